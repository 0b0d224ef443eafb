// Package store opens the agent's one state file, state.db (bbolt) under
// the state directory (/data/hardphone on a phone, $XDG_STATE_HOME/hardphone
// on a desktop), checks it before bbolt touches it, and keeps its schema
// version. Packages below agent (crypto/credstore, update) are handed the
// *bbolt.DB and own one top-level bucket each; this package owns "store".
//
// Threat: a damaged or planted state file. A file truncated below what its
// meta page claims would make bbolt fault on the missing pages, and a file
// from a newer schema would be misread: both are refused with an error
// naming the cause, and the file is left exactly as found so nothing more
// is lost. Nothing secret is stored in clear here: credstore encrypts every
// value before it reaches bbolt.
//
// Imported by system (the wiring), which hands the *bbolt.DB to its other
// owners, and by tests. It imports nothing of hardphone's.
package store
