// Package pgaudit keeps an audit log (package audit's Storage) in
// PostgreSQL, shared by any number of hpfleet replicas. Its tables live in
// their own schema, hpaudit, migrated under an advisory lock.
//
// Appends are serialised in the database: each runs in a transaction that
// first locks the one row holding the tree size (SELECT ... FOR UPDATE),
// so replicas queue on it, each computing its hashes from the tree as the
// previous append left it; the primary keys on record and hash indexes
// make a second use of an index fail rather than fork the tree. Triggers
// refuse UPDATE and DELETE on records, hashes and checkpoints, so a bug or
// an SQL injection running as the application's role cannot rewrite the
// log; a database superuser can, and Verify finds it.
//
// Imported by cmd/hpfleet only (and tests).
package pgaudit
