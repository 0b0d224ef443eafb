package server

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hardphone/hardphone/crypto/eventlog"
	"github.com/hardphone/hardphone/fleet/anomaly"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/store"
)

// What the fleet sees of its phones goes to the audit log too, bounded:
// one entry per ingested batch per device (its security events' kinds
// and the worst severity; a phone's batches are rate-limited by
// EventLimits), one per anomaly finding and one per response carried
// out. These are records of what happened, not admin actions: an entry
// that cannot be written is logged and counted, and the events are kept.

// auditEvents records a batch's fresh security events (none: nothing).
func (s *Server) auditEvents(ctx context.Context, id store.DeviceID, fresh []*eventlog.Record) {
	if s.auditLog == nil {
		return
	}
	counts := map[string]int{}
	var worst *eventlog.Record
	n := 0
	for _, rec := range fresh {
		e := rec.Event
		if e == nil {
			continue
		}
		n++
		counts[e.Kind]++
		// RFC 5424 severities: lower is worse.
		if worst == nil || e.Severity < worst.Event.Severity {
			worst = rec
		}
	}
	if worst == nil {
		return
	}
	kinds := make([]string, 0, len(counts))
	for k, c := range counts {
		kinds = append(kinds, k+"="+strconv.Itoa(c))
	}
	slices.Sort(kinds)
	first, last := fresh[0], fresh[len(fresh)-1]
	e := audit.Entry{Actor: audit.Actor{Kind: audit.ActorDevice, ID: string(id)}, Action: audit.ActionDeviceEvent,
		Target: "device " + string(id), Outcome: audit.OutcomeSuccess,
		Device: &audit.DeviceEvent{Device: string(id), Kind: worst.Event.Kind, Severity: worst.Event.Severity, Seq: worst.Seq,
			Time: worst.Time, Hash: audit.Hash(worst.Hash)},
		Details: map[string]string{"events": strconv.Itoa(n), "kinds": trunc(strings.Join(kinds, ","), audit.MaxDetailValueLen),
			"worst_severity": strconv.Itoa(int(worst.Event.Severity)), "first_seq": strconv.FormatUint(first.Seq, 10),
			"last_seq": strconv.FormatUint(last.Seq, 10), "last_hash": fmt.Sprintf("%x", last.Hash[:])}}
	s.appendRecord(ctx, []audit.Entry{e}, "device events", "device", string(id))
}

// auditFinding records a finding and what each of its responses did
// (outcomes "done" or "failed", as the finding's view says).
func (s *Server) auditFinding(ctx context.Context, f anomaly.Finding, outcomes []string, details []string) {
	if s.auditLog == nil {
		return
	}
	sys := audit.Actor{Kind: audit.ActorSystem, ID: "anomaly"}
	fid := strconv.FormatUint(f.ID, 10)
	fd := map[string]string{"rule": f.Rule, "severity": f.Severity.String(), "summary": trunc(f.Summary, audit.MaxDetailValueLen),
		"devices": trunc(strings.Join(f.Devices, ","), audit.MaxDetailValueLen)}
	if f.MoreDevices > 0 {
		fd["more_devices"] = strconv.Itoa(f.MoreDevices)
	}
	if f.Source.IsValid() {
		fd["source"] = f.Source.String()
	}
	entries := []audit.Entry{{Actor: sys, Action: audit.ActionAnomalyFinding, Target: "finding " + fid, Outcome: audit.OutcomeSuccess,
		Details: fd}}
	for i, r := range f.Responses {
		if i >= audit.MaxAppendBatch-1 {
			break
		}
		out := audit.OutcomeFailure
		if i < len(outcomes) && outcomes[i] == "done" {
			out = audit.OutcomeSuccess
		}
		target := "fleet"
		if r.Device != "" {
			target = "device " + r.Device
		}
		d := map[string]string{"finding": fid, "rule": r.Rule, "kind": string(r.Kind)}
		if i < len(details) && details[i] != "" {
			d["detail"] = trunc(details[i], audit.MaxDetailValueLen)
		}
		if !r.Until.IsZero() {
			d["until"] = r.Until.UTC().Format(time.RFC3339)
		}
		entries = append(entries, audit.Entry{Actor: sys, Action: audit.ActionAnomalyResponse, Target: target, Outcome: out, Details: d})
	}
	s.appendRecord(ctx, entries, "anomaly finding", "finding", fid)
}

// appendRecord appends entries in one batch, logging and counting a
// failure.
func (s *Server) appendRecord(ctx context.Context, entries []audit.Entry, what string, attrs ...any) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if _, err := s.auditLog.AppendBatch(actx, entries); err != nil {
		s.metrics.add("audit_records_lost")
		s.log.Error("audit entry not written: "+what, append(attrs, "err", err)...)
	}
}
