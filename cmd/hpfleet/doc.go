// Command hpfleet is the fleet server: `hpfleet serve` runs the HTTPS API of
// fleet/server (attested zero-touch enrolment, renewal, check-in, CRL,
// admin endpoints) on the embedded bbolt store (--data DIR) or on
// PostgreSQL shared by any number of replicas (--postgres DSN), and the
// admin console (fleet/console) on the same listener when the audit log is
// on; `hpfleet admin bootstrap` creates the first two security admins.
//
// Threat: it holds the device CA key, which lets anyone act as any phone.
// The key file is refused unless only its owner can read it (fleet/ca), it
// is never logged, and a DSN's password never reaches a log line or an
// error message. The server starts only with manufacturer roots and an
// admin CA configured (no open enrolment, no anonymous admin).
//
// Nothing imports it; it imports fleet/..., crypto/policy and
// internal/cli, never the phone's code.
package main
