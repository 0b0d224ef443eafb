// Package history keeps the phone user's call history and contacts: who
// called, whom they called, when and for how long, and the contacts they
// imported from vCards (RFC 6350). Both are personal data, sealed in the
// credential store (AES-256-GCM under its TPM-sealed key) and bounded in
// size, so a copy of the state file reveals neither.
//
// Threat: a vCard is input from elsewhere: it is parsed with every line,
// card and field bounded and everything unknown ignored, never trusted to
// be well-formed.
//
// Imported by agent (which records calls and answers the control
// protocol's history and contacts commands), agent/control (the entries it
// carries), system (which opens it) and cmd/hardphone (which shows them).
// It imports nothing of hardphone's.
package history
