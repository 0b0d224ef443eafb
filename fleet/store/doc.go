// Package store is the fleet server's storage contract: the Store interface,
// its record types (allow-list entries, enrolment challenges, devices,
// issued certificates, check-in reports, fleet settings, and for the
// director: configuration and firmware assignments per group and device,
// and each device's provisioning state, opaque here and written by
// compare-and-swap so replicas never overwrite each other; for security
// monitoring: each device's exported event journal, the anomaly
// detector's observation log, findings, persisted state and lasting
// responses, and the lease that makes one replica the detector), their
// validation
// and the sentinel errors every implementation returns.
//
// Two implementations satisfy it and pass the same conformance suite
// (package storetest): boltstore, the embedded default for one hpfleet
// process, and pgstore, PostgreSQL shared by any number of stateless hpfleet
// replicas. Neither keeps anything that would let the server impersonate a
// phone: no private key is ever stored.
//
// Threat: the records are written from requests of devices and admins, so
// every record is validated (lengths bounded, names in a safe character set,
// times in range) before an implementation touches its database, and a
// refused write changes nothing. Every collection a device can grow is
// bounded: challenges per TPM (MaxChallengesPerEK), reports per device
// (MaxReportHistory), journal records per device (MaxEventsPerDevice),
// the observation log (MaxObservations), findings (MaxAnomalyFindings),
// pages (MaxPageSize), report sizes. The invariants that
// enrolment security rests on are kept by the database, not by the caller:
// a challenge is consumed at most once (replay protection), a certificate
// serial is never handed out twice, a device is created together with its
// first certificate (no half-enrolled device), and revoking a device
// revokes its certificates in the same transaction that stops renewals.
//
// Imported by fleet/server, fleet/console, fleet/director, fleet/rollout
// and cmd/hpfleet, and by the implementations and storetest below it;
// outside fleet/ only cmd/hpfleet imports it or an implementation
// (importers_test.go enforces it: the phone never links server storage).
package store
