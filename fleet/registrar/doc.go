// Package registrar is hpfleet's side of the SIP registrar: it writes the
// subscriber entries of the accounts the fleet manages into Kamailio's
// auth_db table in PostgreSQL, keeps the previous password valid during a
// rotation, and asks Kamailio (JSON-RPC) to send a phone `NOTIFY` with
// `Event: check-sync` over the phone's registered connection.
//
// Stored form: Kamailio 5.6's auth_db verifies digest responses from stored
// hashes (calculate_ha1 = 0): ha1 = H(user ":" realm ":" password) and
// ha1b = H(user "@" domain ":" realm ":" password), H being the digest
// algorithm the registrar is configured for (RFC 7616 §3.4.2: MD5 or
// SHA-256; 5.6 serves one algorithm per instance). SHA-256 is the
// strongest 5.6 verifies from a stored hash, and the default. The
// plaintext column stays empty: the registrar never needs the password.
// An HA1 is password-equivalent for its realm, so the table is as secret
// as the passwords; no salted or slow hash can serve digest
// authentication (the server must compute the same keyed hash as the
// client).
//
// Rotation without a dropped call: Set moves the current hashes to the
// table subscriber_prev (same columns) and writes the new ones; the
// registrar's script checks a response against subscriber first and
// subscriber_prev second, so both passwords work until DropPrevious,
// which the fleet runs once the phone confirmed (in its signed check-in
// report) that it runs the configuration carrying the new password. A
// call established before is never re-authenticated; a re-REGISTER or a
// new INVITE with either password succeeds throughout.
//
// Threat: the database and RPC endpoints are the registrar's keys. The
// DSN is never logged; user and domain are checked to a safe character
// set before they reach SQL (always as parameters) or a SIP header; the
// RPC answer is bounded and parsed strictly.
//
// Imported by fleet/director (through its interfaces) and cmd/hpfleet.
package registrar
