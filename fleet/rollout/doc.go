// Package rollout runs hpfleet's staged rollouts of firmware and of
// configuration documents to a group: rings (named canary devices, then
// cumulative percentages of the group, then all), each started only when
// the ring before it is healthy and, when the rollout has one, inside its
// maintenance window (in the phones' local time); each ring's phones are
// judged from their signed check-in reports (firmware: installed, booted
// and marked good; configuration: applied and marked good), and the
// rollout halts by itself when a ring's failures (rolled back, not marked
// good within the deadline, configuration reverted, stopped reporting)
// pass its threshold, naming the failing phones and why. An operator
// resumes or aborts it; an abort points the devices already moved back at
// what they had (for firmware, the previous bundle; the phone's
// anti-rollback floor still rules). The director (fleet/director) asks the
// Engine, at every publication, what a device's group gives it now
// (Override), so the group's assignment changes only when the last ring
// is done. A device-scope rollout (Spec.Device) moves one phone's own
// firmware or document the same way (one of its group's rollouts; on
// completion the phone's own assignment changes): how one phone's
// security policy changes under two people's approval.
//
// Two people approve every rollout: its creator and another admin with
// the right to approve (the server checks roles; fleet/server). When the
// director root's targets threshold is higher than hpfleet's online keys
// reach, the approval is made real in the signatures: at creation each
// device's next targets (and the targets that would put it back) are
// staged, every approving admin signs them with a key of their own that
// the root lists (hpctl; the server never holds it), and the server adds
// a signature only after verifying it over exactly that device's staged
// metadata. Nothing the server alone signs moves a phone.
//
// State: fleet/store's RolloutStore on bbolt or PostgreSQL. Every change
// is a compare-and-swap of the rollout's or a device's record; replicas
// take a short lease on a rollout (by compare-and-swap) before they
// advance it, so one replica at a time publishes a ring. Every transition
// (creation, approval, start, ring advance, halt, resume, abort,
// completion) is numbered in the rollout's history and appended to the
// audit log (fleet/audit) at least once, in order.
//
// Threat: an operator's mistake or a bad bundle must not reach the whole
// group (rings and the automatic halt); one admin must not move the fleet
// alone (the second approval, and with a threshold, the second signature);
// a compromised hpfleet must not move phones with its online keys (the
// threshold); a report is taken only as the phone signed it, bounded.
//
// Imported by fleet/server and cmd/hpfleet.
package rollout
