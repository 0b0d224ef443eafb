// Package pgauth keeps admins, sessions and lockout counters (package
// adminauth's Store) in PostgreSQL, shared by hpfleet replicas, in the
// schema hpadminauth. Read-modify-write updates lock their row (SELECT
// ... FOR UPDATE), so two replicas accepting the same TOTP code, or
// counting the same failure, serialise: one wins. Inserting a new lockout
// key takes a transaction-scoped advisory lock, so the table's bound holds
// across replicas.
//
// Imported by cmd/hpfleet only (and tests).
package pgauth
