// Package access owns who may use the HTTP API: the bootstrap admin token,
// API tokens with scopes (created, listed and revoked through the API,
// shown once, stored as SHA-256 hashes) and the audit log of every change
// made through the API.
//
// A token secret is "ewt_" followed by 32 random bytes in URL-safe base64;
// only its SHA-256 is stored, which is enough for secrets of that entropy
// (no slow hash is needed). Active tokens are kept in memory, so checking a
// request costs one hash and one map lookup; revocation takes effect at once
// on this process.
//
// Scopes are things:read, things:write, rules:read, rules:write,
// jobs:read, jobs:write, telemetry:read, telemetry:write and admin. A :write
// scope includes its :read scope; admin includes every scope and is the
// only one that may manage tokens, read the audit log or apply fleet files.
// [RouteScope] maps each API route to the scope it needs.
package access
