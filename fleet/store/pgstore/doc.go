// Package pgstore is the fleet store on PostgreSQL, for fleets where any
// number of stateless hpfleet replicas share one database
// (`hpfleet serve --postgres DSN`).
//
// Replicas share nothing but the database, so every guarantee of
// store.Store that concerns more than one request is kept by PostgreSQL,
// never by a lock in this process: a challenge is consumed by one
// DELETE ... RETURNING (one row, one winner); serials and CRL numbers come
// from sequences; uniqueness of devices per TPM and serial is a partial
// unique index; a renewal and a revocation of one device serialise on the
// device row (SELECT ... FOR UPDATE); a report and its history trim run in
// one transaction under the device row's lock; schema migrations run under
// a session advisory lock, so replicas starting together migrate once.
// Transactions run at READ COMMITTED and are retried on deadlock.
//
// Threat: the DSN holds the database password; it is never logged nor put
// in an error (a DSN that does not parse is reported without its text).
// Tables live in their own schema, hpfleet, so a database shared with
// other services (the registrar's) keeps them apart. A database migrated
// by a newer hpfleet is refused (store.ErrSchemaTooNew) before anything is
// written.
//
// Imported by cmd/hpfleet (and tests).
package pgstore
