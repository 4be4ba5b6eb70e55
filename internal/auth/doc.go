// Package auth decides who may connect to the broker and what each
// identity may touch. It implements the broker's Authenticator and
// Authorizer on top of the registry's device credentials:
//
//   - a thing logs in with username = thing name and its password and may
//     publish and subscribe only under its own prefixes (with any wildcard
//     below that level): devices/{its name}/ (telemetry, state, commands),
//     $aws/things/{its name}/ (its shadows and jobs, AWS IoT topic shapes)
//     and $edgewise/things/{its name}/ (the same, Edgewise prefix);
//   - username "admin" with the admin API token as password is the
//     platform's own client and may use every topic;
//   - a client without credentials is anonymous, accepted only when the
//     server allows anonymous access, and may use every topic that does
//     not start with '$'.
//
// Thing names never contain '+', '#' or '/', so no name can widen its
// namespace; the client id plays no part in the decision.
package auth
