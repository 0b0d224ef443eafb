// Package audit is the fleet's tamper-evident audit trail: every admin
// action, approval, login, lockout and device security event becomes one
// typed Entry, appended to an RFC 6962-style Merkle log (the tree hashes,
// inclusion and consistency proofs of golang.org/x/mod/sumdb/tlog) whose
// heads are published as checkpoints signed with the log's Ed25519 key
// (golang.org/x/mod/sumdb/note, in the C2SP tlog-checkpoint text form).
//
// A Log keeps its tree in a Storage: boltaudit (one hpfleet process, a
// bbolt file) and pgaudit (PostgreSQL shared by hpfleet replicas, appends
// serialised in the database) implement it and pass one suite
// (audittest). Export writes a log as JSON lines (header, checkpoints,
// entries); Verify reads such an export and, against the trusted key and
// any checkpoints kept elsewhere (the syslog collector's copy), recomputes
// the tree and names every edited, deleted, duplicated, reordered or
// truncated entry by index. SyslogExporter ships checkpoints to an RFC 5425
// collector so an outside copy of the signed heads exists.
//
// Threat: an attacker who gains the fleet server or its database and wants
// to erase or rewrite what admins and devices did. Every entry is sealed
// (signed with the log key over its leaf hash, its index inside the
// signed data), so an attacker without the key cannot edit, move or drop
// an entry without Verify naming it; every checkpoint commits to the whole
// prefix, so dropping the tail is seen against any checkpoint beyond it.
// An attacker who also holds the log key can rewrite history and re-sign
// it, but not make the rewrite consistent with checkpoints already shipped
// to the collector: Verify given those reports the range where the
// histories part (root_mismatch or fork). What no log can prove on its
// own: a tail appended after the last checkpoint the collector holds and
// then removed together with every copy.
//
// Entry fields come from requests (user names typed at a login form, user
// agents, device reports): Append replaces invalid UTF-8, control and bidi
// characters and cuts strings to their bounds; the decoder accepts only
// the canonical encoding, so one entry has exactly one leaf.
//
// Imported by fleet/server and cmd/hpfleet (the log and the exporter),
// fleet/console and fleet/rollout (which append entries), cmd/hpctl for
// Verify, and its storages boltaudit and pgaudit and their suite
// audittest; it never imports agent/ (the phone's code).
package audit
