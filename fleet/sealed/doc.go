// Package sealed is the format of a secret the fleet sends to one phone
// that only that phone's TPM can open: a SIP password travelling inside a
// configuration document (`password_sealed = "hps1...."`).
//
// A sealed value is ECIES over NIST P-256 (SEC 1 §5.1, with HKDF in place
// of its KDF): the fleet draws an ephemeral key pair, the shared secret Z
// is the x-coordinate of the ephemeral private key times the phone's
// sealing public key (whose private half never leaves the phone's TPM:
// TPM2_ECDH_ZGen computes the same Z there), HKDF-SHA256 (RFC 5869) turns
// Z into an AES-256-GCM key, and the ciphertext is authenticated together
// with the device ID, the configuration document version the value was
// sealed for, and the secret's name. So a value sealed to another phone,
// moved to another device's document, to another credential name, or
// replayed under another version fails to open, and says so.
//
// Both ends live here so they cannot drift apart: Seal for hpfleet
// (fleet/director) and Parse + Box.Open for the phone (crypto/credstore
// computes Z in the TPM and calls Open with it).
//
// Threat: the document travels through untrusted servers and is stored by
// the fleet server, which keeps no plaintext: only the phone's TPM can open
// the value. Everything is parsed from untrusted input, so Parse bounds
// the encoded size, checks the point is on the curve, and Open refuses
// before returning any plaintext when authentication fails. Plaintexts
// are never logged.
//
// Imported by fleet/director (sealing) and crypto/credstore (opening). It
// imports nothing of hardphone's.
package sealed
