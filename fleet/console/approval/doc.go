// Package approval holds the fleet's two-person rule: a change an admin
// proposes (a new admin, a role change, disabling an admin) is kept as a
// pending Change and takes effect only when a second admin approves it.
// Decide is the rule itself, with no storage in it: the change must be
// pending and unexpired, and the approver must be neither the admin who
// proposed it nor the admin it is about. Store keeps changes; boltapproval
// (one hpfleet process) and pgapproval (replicas over PostgreSQL) implement
// it and pass one suite (approvaltest), whose Update is atomic across
// replicas, so of two admins approving at once exactly one decides.
//
// Threat: one admin, or one stolen admin session, that wants to grant
// itself or an accomplice more power, or add an admin account of its own.
// Such a change needs a second, different admin's approval, and the rule
// is checked in the same atomic update that records the decision. What it
// does not hold off: two colluding admins, and an attacker who controls
// the fleet server or its database (that attacker writes admin records
// directly; the audit log's signed checkpoints, shipped off the server,
// are what shows it afterwards).
//
// A proposal to create an admin carries the new admin's password as an
// argon2id hash, never in clear; it is cleared from the record when the
// change is decided.
//
// Imported by fleet/console and cmd/hpfleet, and by its stores
// boltapproval and pgapproval and their suite approvaltest.
package approval
