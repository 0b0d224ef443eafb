// Package eventlog is the record format of the phone's security event
// journal, and the proofs over it: the byte layout of event, genesis,
// checkpoint and truncation records, their canonical encoding and decoding,
// the SHA-256 chain that links each record to the one before, and the
// signatures of the device identity key over the signed records
// (CheckSegment proves a run of exported records).
//
// It is the one definition both sides share: the phone writes its journal
// with it (agent/events) and the fleet verifies what phones export with it
// (fleet/server), so neither can drift from the other, and the fleet never
// imports the phone's agent.
//
// Threat: every byte comes from a file or a network peer an attacker may
// hold. Decode refuses anything the encoder would not have written (it is
// canonical: decode then encode gives the same bytes, so the chain hash of a
// decoded record is the hash of what was stored or sent), every length is
// checked before it is read, strings are bounded and free of control and
// bidi characters, and signatures are domain-separated from every other use
// of the identity key.
//
// Imported by agent/events and fleet/server. It imports nothing of ours.
package eventlog
