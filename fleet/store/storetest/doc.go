// Package storetest is the conformance suite every store.Store
// implementation passes: Run drives one implementation through every
// method, the refusals (bad input changes nothing), the concurrency
// guarantees replicas rely on (a challenge consumed once, serials never
// repeated, a renewal never outliving a revocation), persistence across a
// reopen and the refusal of a newer schema.
//
// Only _test.go files import it (of boltstore, pgstore and later
// implementations).
package storetest
