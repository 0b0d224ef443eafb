package console

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hardphone/hardphone/crypto/eventlog"
	"github.com/hardphone/hardphone/fleet/store"
)

// JournalReader is the part of the fleet store JournalEvents reads: the
// journals phones exported.
type JournalReader interface {
	EventStream(ctx context.Context, id store.DeviceID) (store.EventStream, error)
	ListEvents(ctx context.Context, id store.DeviceID, after uint64, limit int) ([]store.EventRecord, error)
}

// JournalEvents lists a device's security events from the journal it
// exported to the fleet: each run was proved against the identity key the
// fleet enrolled before it was stored, so these are the phone's own
// signed records, with the gaps the fleet found in them (missing,
// truncated, replaced) as events of their own. A device that never
// exported (a phone without events.fleet, or before its first batch) gets
// what ReportEvents derives from its check-ins.
type JournalEvents struct {
	Journal JournalReader
	Reports ReportReader
}

// DeviceEvents implements EventSource.
func (e *JournalEvents) DeviceEvents(ctx context.Context, id store.DeviceID, limit int) ([]Event, error) {
	if limit < 1 || limit > MaxEvents {
		return nil, fmt.Errorf("device events: limit %d, want 1..%d: %w", limit, MaxEvents, store.ErrInvalid)
	}
	st, err := e.Journal.EventStream(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return (&ReportEvents{Reports: e.Reports}).DeviceEvents(ctx, id, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("device events of %s: %w", id, err)
	}
	out := make([]Event, 0, min(limit, st.Records)+len(st.Gaps))
	for _, g := range st.Gaps {
		out = append(out, gapEvent(id, g))
	}
	// The newest limit records: positions are contiguous from FirstPos
	// to NextPos-1.
	after := st.FirstPos
	if after > 0 {
		after--
	}
	if st.NextPos > uint64(limit)+1 && st.NextPos-uint64(limit)-1 > after {
		after = st.NextPos - uint64(limit) - 1
	}
	recs, err := e.Journal.ListEvents(ctx, id, after, limit)
	if err != nil {
		return nil, fmt.Errorf("device events of %s: %w", id, err)
	}
	for _, r := range recs {
		if r.Kind == "" {
			continue // genesis, checkpoints, truncation records: the chain, not events
		}
		out = append(out, Event{Device: id, Time: r.Time, Kind: r.Kind, Severity: r.Severity, Detail: recordDetail(r.Raw)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// gapEvent shows a hole the fleet found in a device's exported journal.
func gapEvent(id store.DeviceID, g store.EventGap) Event {
	ev := Event{Device: id, Time: g.At, Kind: "journal." + string(g.Kind), Severity: sevWarning}
	switch g.Kind {
	case store.GapMissing:
		// Nothing the phone signed explains it: deleted or altered there.
		ev.Severity = sevError
		ev.Detail = fmt.Sprintf("records %d to %d of journal %x never arrived and no signed truncation accounts for them", g.From, g.To, g.Chain[:4])
	case store.GapTruncated:
		ev.Detail = fmt.Sprintf("records %d to %d of journal %x were dropped on the phone before export (signed truncation record)", g.From, g.To, g.Chain[:4])
	case store.GapReplaced:
		ev.Detail = fmt.Sprintf("the phone started journal %x; journal %x ended at record %d as far as the fleet knows", g.Chain[:4], g.OldChain[:4], max(g.From, 1)-1)
	default:
		ev.Detail = fmt.Sprintf("records %d to %d of journal %x", g.From, g.To, g.Chain[:4])
	}
	return ev
}

// recordDetail is an event record's account, peer and detail in one line
// ("" when the record does not decode: the kind and time still show).
func recordDetail(raw []byte) string {
	rec, err := eventlog.Decode(raw)
	if err != nil || rec.Event == nil {
		return ""
	}
	var parts []string
	if rec.Event.Account != "" {
		parts = append(parts, "account="+rec.Event.Account)
	}
	if rec.Event.Peer.IsValid() {
		parts = append(parts, "peer="+rec.Event.Peer.String())
	}
	keys := make([]string, 0, len(rec.Event.Detail))
	for k := range rec.Event.Detail {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+rec.Event.Detail[k])
	}
	return strings.Join(parts, " ")
}
