// Package events is the phone's security event log: one typed event model
// (Kind, Severity, Event), a rate limiter in front of it (Recorder), a
// tamper-evident journal in the agent's state file (Journal: a SHA-256 hash
// chain with checkpoints signed by the device identity key, bounded in size
// with signed truncation records, checked by Verify), and the export of that
// journal to a syslog collector as RFC 5424 messages over mutual TLS with
// RFC 5425 framing (Exporter), in order, from a persisted delivery cursor.
//
// Threat: an attacker who holds root for a while and wants to erase the
// traces of what it did, and a flood (a SIP scanner, an INVITE storm)
// meant to fill the disk or drown the events that matter. Against the
// flood: every event is rate limited per kind and per kind and peer, and
// what is suppressed is counted and summarised; the journal is bounded in
// bytes and drops its oldest records under a signed truncation record.
// Against the eraser: every record is chained to the one before, so an
// edit, a deletion or a reordering inside the chain is found by Verify and
// the record named; checkpoints signed by the identity key pin the chain
// so a copy of the state file cannot be rewritten offline; and the export
// ships every record with its sequence number and chain hash to a collector
// the attacker does not hold. What a local journal cannot prove on its own
// (a tail rolled back beyond the last checkpoint the attacker also rolled
// back, records rewritten and re-signed while root could use the identity
// key) is spelled out on Verify; the collector closes that gap.
//
// Field values of an event are attacker-influenced (a User-Agent, a URI):
// every string is bounded, invalid UTF-8 and control and bidi characters
// are replaced, and detail keys that name secrets are refused.
//
// The record format itself (encoding, canonical decoding, signatures) is
// crypto/eventlog's, shared with the fleet, which verifies what phones
// export with it (FleetExporter ships the journal to hpfleet).
//
// Imported by agent, agent/control (the records and report it carries),
// system (which opens the journal and builds the exporters) and
// cmd/hardphone. It imports crypto/policy for the TLS client configuration,
// crypto/eventlog, fleet/api for the export's wire types, internal/tcpack
// (a record is delivered once the collector's TCP acknowledged it), and
// nothing of the SIP or media layers.
package events
