// Package boltaudit keeps an audit log (package audit's Storage) in a
// bbolt file: the one-process hpfleet's store. It can share the fleet
// store's file (New on its *bolt.DB: its buckets live under one top-level
// bucket, "audit.v1") or have a file of its own (Open).
//
// bbolt runs one write transaction at a time, so appends are serialised
// by the file's writer lock; the file's flock keeps a second process out.
// Records, stored hashes and checkpoints are written, never changed: the
// package has no code path that overwrites or deletes them.
//
// Imported by cmd/hpfleet only (and tests).
package boltaudit
