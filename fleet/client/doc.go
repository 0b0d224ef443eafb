// Package client is the fleet protocol's client side: HTTPS requests to an
// hpfleet server with the crypto policy's TLS, the server's CA and name
// pinned by the caller (never learned from the network), bounded answers
// decoded into fleet/api types, refusals returned as *api.Error. Enrol runs
// one attested enrolment round over any Attester (the phone's credential
// store, or a factory station driving the phone's TPM).
//
// Threat: a network attacker or a rogue server. The server must present a
// certificate from the pinned CA for the pinned name (an address hint,
// from DHCP say, changes only where the client dials); every answer is
// size-bounded and validated before it is used; the activated secret goes
// only into the finish request body, to that server.
//
// Imported by agent/provision (the phone), cmd/hpctl (admins, factory
// stations) and fleet/rollout/rollouttest (the simulated phone of the
// rollout tests). It imports fleet/api and crypto/policy only.
package client
