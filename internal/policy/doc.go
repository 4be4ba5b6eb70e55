// Package policy owns authorization policies in the AWS IoT policy
// document shape: parsing and validating documents, storing them with
// their attachments to certificates, things and thing groups, and
// compiling the policies that apply to one connection into a Compiled
// value the broker consults on CONNECT, PUBLISH, SUBSCRIBE and delivery.
//
// # Documents
//
//	{"Version": "2012-10-17", "Statement": [
//	  {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
//	   "Resource": "arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*"}]}
//
// Effect is Allow or Deny; a matching Deny overrides every Allow and
// nothing is allowed unless a statement allows it. Actions are
// iot:Connect, iot:Publish, iot:Subscribe and iot:Receive (the "iot:"
// prefix is optional, case does not matter, '*' and '?' glob over the
// names). Statement may be one object or an array; Action and Resource a
// string or an array.
//
// Resources are "*", KIND/PATTERN or an ARN arn:aws:iot:REGION:ACCOUNT:KIND/PATTERN
// (region and account are not checked). KIND decides which action they
// can match:
//
//	client/<client id>          iot:Connect
//	topic/<topic name>          iot:Publish, iot:Receive
//	topicfilter/<topic filter>  iot:Subscribe
//
// In PATTERN, '*' matches any run of characters (including '/') and '?'
// exactly one; MQTT's '+' and '#' are ordinary characters, so
// topicfilter/devices/+/x allows subscribing to exactly the filter
// "devices/+/x". ${*}, ${?} and ${$} are the literal characters.
//
// # Variables
//
// ${iot:ClientId}, ${iot:Connection.Thing.ThingName},
// ${iot:Connection.Thing.ThingTypeName},
// ${iot:Connection.Thing.Attributes[name]} and
// ${iot:Connection.Thing.IsAttached} are substituted when a connection's
// policy is compiled. Substituted values are always literal: a client id
// containing '*', '?', '+', '#' or '/' matches only itself and can never
// widen a pattern. A resource whose variable has no value for the
// connection (no thing, no such attribute) matches nothing. Conditions
// (StringEquals, StringNotEquals, StringLike, StringNotLike, Bool) test the
// same keys and decide whether a statement applies at all.
//
// # Evaluation
//
// Store.Effective gathers the policies attached to the connection's
// certificate, to its thing and to the thing's groups (through
// GroupResolver, ancestors included) and compiles them once; with none
// attached the built-in Default applies, which reproduces the default
// confinement to devices/{thing}/, $aws/things/{thing}/ and
// $edgewise/things/{thing}/. Compiled checks are allocation-free. The
// Store's Generation increases with every change, so a cached Compiled can
// be recompiled when it is stale.
package policy
