// Package server is hpfleet's HTTPS API: attested zero-touch enrolment,
// renewal and check-in of phones over mutual TLS, the device CA's CRL, the
// export of phones' event journals (proved with crypto/eventlog against
// the identity key each device enrolled), the anomaly detector run on the
// replica holding its lease with its responses (alerts, outbound blocks
// through the director, quarantine at renewal), and the admin endpoints
// (allow-list import, inventory, revoke, retire, settings, metrics,
// findings), on any fleet/store implementation.
//
// Threat: every request comes from the network. Phones enrol before they
// hold a certificate, so enrolment trusts nothing the phone says that its
// TPM's manufacturer did not certify (fleet/attest) and nothing that is
// not on the fleet's allow-list; the credential secret is compared in
// constant time and its challenge is consumed once, by the store, across
// replicas. Renewal and check-in authenticate with the device certificate
// over mutual TLS (a fresh proof of possession of the TPM key at each
// handshake) and look the certificate up in the store, so a revoked or
// retired device is refused at once, without waiting for its certificate
// to expire. Admin endpoints take only certificates of the admin CAs.
// Bodies are bounded (fleet/api limits), parsed completely and validated
// before anything is written; a refusal changes nothing, answers 4xx with
// a code (fleet/api), is counted, and is logged without key material and
// at a bounded rate. The server holds no private key of any phone.
//
// Imported by cmd/hpfleet only (and the tests).
package server
