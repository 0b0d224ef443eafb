// Package boltapproval keeps pending and decided changes (package
// approval's Store) in a bbolt file: the one-process hpfleet's store. It
// can share the fleet store's file (New on its *bolt.DB: everything lives
// under the top-level bucket "approval.v1") or have its own (Open). Every
// update is one bbolt write transaction, so the two-person rule run inside
// Update decides once.
//
// Imported by cmd/hpfleet only (and tests).
package boltapproval
