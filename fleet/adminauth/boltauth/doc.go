// Package boltauth keeps admins, sessions and lockout counters (package
// adminauth's Store) in a bbolt file: the one-process hpfleet's store. It
// can share the fleet store's file (New on its *bolt.DB: everything lives
// under the top-level bucket "adminauth.v1") or have its own (Open).
// Every update is one bbolt write transaction, so read-modify-write
// updates are atomic.
//
// Imported by cmd/hpfleet only (and tests).
package boltauth
