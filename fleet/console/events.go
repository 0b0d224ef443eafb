package console

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

// Event is one security event of a device, as the console lists it.
type Event struct {
	Device store.DeviceID
	// Time is when the fleet learned of it (a report's receipt) or the
	// phone's own time of the event.
	Time time.Time
	// Kind names the event: "counter.<name>" for a security counter that
	// grew, "lockdown.drift", "firmware.changed", or the phone's own kind
	// when the events come from its journal.
	Kind string
	// Severity is the RFC 5424 severity, 0 (emergency) to 7 (debug).
	Severity uint8
	// Count is how many times it happened since the previous report
	// (counters); 0 when not counted.
	Count uint64
	// Detail says more (a lockdown finding, a version change).
	Detail string
}

// EventSource lists a device's security events, newest first, at most
// limit (1..MaxEvents): JournalEvents from the journals phones exported,
// ReportEvents from check-in reports.
type EventSource interface {
	DeviceEvents(ctx context.Context, id store.DeviceID, limit int) ([]Event, error)
}

// MaxEvents bounds one DeviceEvents answer.
const MaxEvents = 500

// ReportReader is the part of the fleet store ReportEvents reads.
type ReportReader interface {
	ReportHistory(ctx context.Context, id store.DeviceID, limit int) ([]store.Report, error)
}

// ReportEvents derives security events from a device's check-in reports:
// each security counter that grew between two consecutive reports (a
// counter that went down was reset by a reboot: its whole value is new),
// a lockdown check that found drift, and a change of the running
// firmware. A phone's first report counts its counters from zero.
type ReportEvents struct {
	Reports ReportReader
}

// Severities (RFC 5424 §6.2.1).
const (
	sevError   = 3
	sevWarning = 4
	sevNotice  = 5
)

// DeviceEvents implements EventSource.
func (e *ReportEvents) DeviceEvents(ctx context.Context, id store.DeviceID, limit int) ([]Event, error) {
	if limit < 1 || limit > MaxEvents {
		return nil, fmt.Errorf("device events: limit %d, want 1..%d: %w", limit, MaxEvents, store.ErrInvalid)
	}
	reports, err := e.Reports.ReportHistory(ctx, id, store.MaxReportHistory)
	if err != nil {
		return nil, fmt.Errorf("device events of %s: %w", id, err)
	}
	// Oldest first, to compare each report with the one before it.
	slices.Reverse(reports)
	var out []Event
	var prev *store.Report
	for i := range reports {
		r := &reports[i]
		out = append(out, reportEvents(id, prev, r)...)
		prev = r
	}
	// Newest first; within one report, by kind.
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		return out[i].Kind < out[j].Kind
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func reportEvents(id store.DeviceID, prev, r *store.Report) []Event {
	var out []Event
	for name, v := range r.Counters {
		var was uint64
		if prev != nil {
			was = prev.Counters[name]
		}
		delta := v
		if v >= was {
			delta = v - was
		}
		if delta > 0 {
			out = append(out, Event{Device: id, Time: r.ReceivedAt, Kind: "counter." + name, Severity: sevWarning, Count: delta})
		}
	}
	if !r.Lockdown.OK {
		detail := strings.Join(r.Lockdown.Findings, "; ")
		if detail == "" {
			detail = "the running system does not match the lockdown policy"
		}
		out = append(out, Event{Device: id, Time: r.ReceivedAt, Kind: "lockdown.drift", Severity: sevError, Detail: detail})
	}
	if prev != nil && (prev.Firmware != r.Firmware) {
		sev := uint8(sevNotice)
		if r.Firmware.SecurityVersion < prev.Firmware.SecurityVersion {
			sev = sevError // a rollback below what ran before
		}
		out = append(out, Event{Device: id, Time: r.ReceivedAt, Kind: "firmware.changed", Severity: sev,
			Detail: fmt.Sprintf("%s (security version %d) -> %s (security version %d)", prev.Firmware.Version,
				prev.Firmware.SecurityVersion, r.Firmware.Version, r.Firmware.SecurityVersion)})
	}
	return out
}
