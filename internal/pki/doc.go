// Package pki owns the platform's X.509 identities: the platform
// certificate authority, device certificates issued by it (a key pair
// generated for a thing, or a CSR signed for a device that keeps its own
// key), certificate authorities registered by users (bring your own CA,
// optionally with just-in-time registration), the state of every
// certificate (ACTIVE, INACTIVE, REVOKED) and the many-to-many attachment
// of certificates to things.
//
// # Storage
//
// The platform CA's certificate and private key are files (ca.pem and
// ca.key, mode 0600) in Options.Dir, created on first start with an ECDSA
// P-256 key, or files the user supplies (Options.CACertFile and
// Options.CAKeyFile). Certificates, registered CAs and attachments live in
// the registry database under the schema component "pki"; a certificate's
// id is the lowercase hex SHA-256 of its DER encoding (its fingerprint),
// so the same certificate always has the same id. Private keys of issued
// device certificates are returned once and never stored.
//
// # Verification
//
// VerifyChain checks a TLS client chain against the platform CA and the
// ACTIVE registered CAs (the pool is rebuilt whenever a CA is registered
// or changes state), deliberately ignoring the leaf's validity period so
// that an expired certificate reaches the MQTT layer and is refused there
// with a CONNACK and a log line naming the reason. Authenticate then maps
// the leaf to its record and refuses unknown, INACTIVE, REVOKED, expired
// and not-yet-valid certificates.
//
// # Just-in-time registration
//
// A certificate that is not known but verifies against a registered CA with
// AutoRegister set is recorded as ACTIVE on its first connection and
// attached to a thing: the thing named by the MQTT client id if such a
// thing exists, otherwise the thing named by the certificate's subject
// common name if that exists. If neither exists the certificate is
// recorded (ACTIVE, attached to nothing) and the connection is refused as
// not attached; attaching it later lets the device in.
//
// Listeners registered with OnChange hear about every state change,
// detachment and deletion, so the broker can drop connections that a
// revocation no longer allows.
package pki
