// Package auth decides who may connect to the broker and what each
// identity may touch. It implements the broker's Authenticator, Authorizer
// and Receiver on top of the registry (passwords, things), the PKI (client
// certificates) and the policy store:
//
//   - a client that presents a TLS client certificate is identified by it
//     alone: the certificate must be known (or registered just in time),
//     ACTIVE, within its validity and attached to the thing named by the
//     client id; refusals carry a reason string and are logged;
//   - otherwise a thing logs in with username = thing name and its
//     password (unless Options.DisablePassword);
//   - username "admin" with the admin API token as password is the
//     platform's own client and may use every topic;
//   - a client without credentials is anonymous, accepted only when the
//     server allows anonymous access, and may use every topic that does
//     not start with '$'.
//
// With a policy store (Options.Policies), a thing's connection gets its
// effective policy compiled at CONNECT (kept in Principal.Authz, recompiled
// lazily when the store's generation changes): iot:Connect is checked on
// CONNECT, iot:Publish and iot:Subscribe on each request, iot:Receive on
// each delivery. With no policy attached the built-in default confines a
// thing to devices/{name}/, $aws/things/{name}/ and
// $edgewise/things/{name}/. Without a policy store the same confinement is
// applied directly (Namespaces).
//
// CertificateChanged, registered as the PKI's change listener, closes the
// connections a revocation, deactivation, deletion or detachment no longer
// allows, through the broker (SetDisconnector).
package auth
