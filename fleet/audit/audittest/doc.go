// Package audittest is the conformance suite every audit.Storage passes
// (boltaudit, pgaudit): appends and reads, proofs between arbitrary sizes
// against an independent tree computation, checkpoints, export, verify
// and import, persistence, tampering underneath the log, and appends from
// several handles at once (hpfleet replicas) that must never use an index
// twice. Tests only: production code never imports it.
package audittest
