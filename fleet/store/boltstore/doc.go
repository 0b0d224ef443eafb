// Package boltstore is the fleet store on one embedded bbolt file,
// DIR/fleet.db: the default of `hpfleet serve --data DIR`, with nothing to
// set up. bbolt takes an exclusive file lock, so one hpfleet process owns
// the file; its writes are serialised by bbolt's single writer, which is
// what makes ConsumeChallenge exactly-once and sequences unique here. For
// several replicas use pgstore.
//
// Threat: the file holds the fleet's inventory and allow-list. It is
// created 0600 in a 0700 directory and refused when others may write it
// or its directory (whoever can replace it can enrol a device or roll the
// fleet's records back). A file written by a newer hpfleet is refused
// (store.ErrSchemaTooNew) and left untouched.
//
// Imported by cmd/hpfleet (and tests).
package boltstore
