// Package adminauth holds the fleet server's admin authentication
// primitives, with no HTTP in them: argon2id password hashes, TOTP
// (RFC 6238) with replay prevention, WebAuthn registration and login
// ceremonies, session tokens bound to the client's network and user
// agent, step-up for privileged actions, lockout with exponential backoff
// per account and per source address, and the role-based permission
// table (RBAC). An Authenticator ties them to a Store; boltauth and
// pgauth implement Store and pass one suite (authtest).
//
// Threat: an attacker on the network who guesses or stuffs passwords,
// enumerates admin names, replays a TOTP code or a session token it
// observed, fixes a session identifier before the victim logs in, or
// steals a session cookie and uses it from elsewhere; and an attacker who
// reads the database (hashes only: argon2id for passwords, SHA-256 for
// session tokens). Every login runs the same work whether the name exists
// or not; failures slow down exponentially per account and per source,
// in tables of bounded size; a TOTP time step is accepted once per admin;
// a session token is minted only after the last factor and never reused
// across a privilege change; a session used from another network or user
// agent must prove the second factor again; privileged permissions need a
// second factor proved within minutes.
//
// What it does not hold off: a TOTP secret is stored as the server must
// use it (the lead may seal it under a server key); an attacker holding a
// valid password and the second factor is an admin.
//
// Imported by fleet/server, fleet/console and cmd/hpfleet, and by its
// stores boltauth and pgauth and their suite authtest.
package adminauth
