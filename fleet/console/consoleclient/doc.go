// Package consoleclient is hpctl's client of the admin console's JSON API
// (consoleapi): log in with the admin's client certificate, password and
// TOTP code, keep the session token in memory, step up with a fresh code
// when the server asks, and call the console's endpoints. Refusals come
// back as *consoleapi.Error.
//
// Threat: a network attacker or a rogue server. The server's CA and name
// are pinned by the caller (crypto/policy's TLS, never learned from the
// network); every answer is size-bounded; the password, the TOTP code and
// the session token go only to that server, in request bodies and the
// Authorization header, never in a URL. The client never follows a
// redirect.
//
// Imported by cmd/hpctl. It imports consoleapi and crypto/policy only.
package consoleclient
