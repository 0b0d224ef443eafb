// Package pgapproval keeps pending and decided changes (package approval's
// Store) in PostgreSQL, shared by hpfleet replicas, in the schema
// hpapproval. Update locks the change's row (SELECT ... FOR UPDATE), so of
// two replicas approving one change at once, one decides and the other
// sees it decided; Create takes a transaction-scoped advisory lock, so the
// pending bounds hold across replicas.
//
// Imported by cmd/hpfleet only (and tests).
package pgapproval
