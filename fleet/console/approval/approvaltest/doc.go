// Package approvaltest is the conformance suite every approval.Store
// passes (boltapproval, pgapproval): create, get and list in order, the
// pending bounds per admin and in all, expiry on create, the history
// bound, atomic updates that keep a change's identity, and the two-person
// rule under concurrency: of many approvers at once, from two handles on a
// shared database, exactly one decides. Tests only.
package approvaltest
