package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/crypto/eventlog"
	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/store"
)

func TestReportEventsDerivation(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	rep := func(h int, fw string, sv uint64, ok bool, counters map[string]uint64) store.Report {
		r := store.Report{ReceivedAt: t0.Add(time.Duration(h) * time.Hour), Firmware: store.FirmwareVersion{Version: fw, SecurityVersion: sv},
			Lockdown: store.LockdownResult{OK: ok}, Counters: counters}
		if !ok {
			r.Lockdown.Findings = []string{"port 23 open"}
		}
		return r
	}
	tests := []struct {
		name string
		prev *store.Report
		cur  store.Report
		want []string
	}{
		{"first report counts from zero", nil, rep(1, "1.0", 1, true, map[string]uint64{"a": 3, "b": 0}), []string{"counter.a+3"}},
		{"growth only", ptr(rep(1, "1.0", 1, true, map[string]uint64{"a": 3})), rep(2, "1.0", 1, true, map[string]uint64{"a": 5}), []string{"counter.a+2"}},
		{"reset by a reboot", ptr(rep(1, "1.0", 1, true, map[string]uint64{"a": 9})), rep(2, "1.0", 1, true, map[string]uint64{"a": 4}), []string{"counter.a+4"}},
		{"no change", ptr(rep(1, "1.0", 1, true, map[string]uint64{"a": 9})), rep(2, "1.0", 1, true, map[string]uint64{"a": 9}), nil},
		{"drift", nil, rep(1, "1.0", 1, false, nil), []string{"lockdown.drift/3"}},
		{"update", ptr(rep(1, "1.0", 1, true, nil)), rep(2, "1.1", 2, true, nil), []string{"firmware.changed/5"}},
		{"rollback", ptr(rep(1, "1.1", 2, true, nil)), rep(2, "1.0", 1, true, nil), []string{"firmware.changed/3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range reportEvents("dev-x", tt.prev, &tt.cur) {
				switch {
				case e.Count > 0:
					got = append(got, fmt.Sprintf("%s+%d", e.Kind, e.Count))
				default:
					got = append(got, fmt.Sprintf("%s/%d", e.Kind, e.Severity))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("reportEvents(%s) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestReportEventsOverStore: events come newest first from the store's
// report history, bounded by the limit.
func TestReportEventsOverStore(t *testing.T) {
	e := newEnv(t, envOptions{})
	ids := e.seedDevices(t, 1)
	src := &ReportEvents{Reports: e.fleet}
	all, err := src.DeviceEvents(ctx, ids[0], MaxEvents)
	if err != nil || len(all) < 4 {
		t.Fatalf("DeviceEvents = %v, %v; want several", all, err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.After(all[i-1].Time) {
			t.Fatalf("events out of order at %d: %v after %v", i, all[i].Time, all[i-1].Time)
		}
	}
	two, err := src.DeviceEvents(ctx, ids[0], 2)
	if err != nil || len(two) != 2 || two[0] != all[0] {
		t.Fatalf("DeviceEvents(limit 2) = %v, %v", two, err)
	}
	if _, err := src.DeviceEvents(ctx, ids[0], MaxEvents+1); err == nil {
		t.Fatalf("DeviceEvents(limit over the bound) succeeded")
	}
	if _, err := src.DeviceEvents(ctx, store.NewDeviceID(), 10); err == nil {
		t.Fatalf("DeviceEvents(unknown device) succeeded")
	}
}

// TestJournalEvents: with an exported journal in the store, the events
// are the phone's own records (account, peer and detail decoded), newest
// first, bounded by the limit; chain records are not events; a gap the
// fleet found is an event of its own; a device that never exported gets
// its report-derived events.
func TestJournalEvents(t *testing.T) {
	e := newEnv(t, envOptions{})
	ids := e.seedDevices(t, 2)
	src := &JournalEvents{Journal: e.fleet, Reports: e.fleet}
	// The second device never exported: its check-in reports speak.
	fromReports, err := src.DeviceEvents(ctx, ids[1], MaxEvents)
	if err != nil || len(fromReports) == 0 || !strings.HasPrefix(fromReports[0].Kind, "counter.") && fromReports[0].Kind != "lockdown.drift" && fromReports[0].Kind != "firmware.changed" {
		t.Fatalf("DeviceEvents(no journal) = %v, %v; want the report-derived events", fromReports, err)
	}
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	chain := [16]byte{1, 2, 3, 4}
	var recs []store.EventRecord
	for i := range 30 {
		at := base.Add(time.Duration(i) * time.Minute)
		ev := &eventlog.Event{Severity: sevWarning, Kind: "sip.foreign_source", Account: "line1",
			Peer: netip.MustParseAddrPort("198.51.100.7:5060"), Detail: map[string]string{"method": "INVITE", "n": strconv.Itoa(i)}}
		recs = append(recs, store.EventRecord{Chain: chain, Seq: uint64(i + 2), Type: uint8(eventlog.RecordEvent), Time: at,
			Kind: ev.Kind, Severity: ev.Severity, Raw: eventlog.EncodeEvent(eventlog.Hash{}, uint64(i+2), at, ev)})
	}
	// A chain record (no kind) at the end.
	recs = append(recs, store.EventRecord{Chain: chain, Seq: 32, Type: uint8(eventlog.RecordCheckpoint), Time: base.Add(31 * time.Minute), Raw: []byte{0}})
	gapAt := base.Add(40 * time.Minute)
	stream := store.EventStream{Chain: chain, Head: 32, Received: 31, UpdatedAt: gapAt,
		Gaps: []store.EventGap{{Kind: store.GapMissing, Chain: chain, From: 10, To: 12, At: gapAt}}}
	if _, err := e.fleet.AppendEvents(ctx, ids[0], store.EventAppend{Stream: stream, Records: recs}, 0); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	all, err := src.DeviceEvents(ctx, ids[0], MaxEvents)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 31 {
		t.Fatalf("DeviceEvents = %d events, want the 30 journal events and the gap: %+v", len(all), all)
	}
	if all[0].Kind != "journal.missing" || all[0].Severity != sevError || !strings.Contains(all[0].Detail, "10 to 12") {
		t.Fatalf("newest event %+v, want the missing gap", all[0])
	}
	if got := all[1]; got.Kind != "sip.foreign_source" || got.Detail != "account=line1 peer=198.51.100.7:5060 method=INVITE n=29" || !got.Time.Equal(base.Add(29*time.Minute)) {
		t.Fatalf("newest journal event %+v", got)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.After(all[i-1].Time) {
			t.Fatalf("events out of order at %d", i)
		}
	}
	// The limit takes the newest records of the journal.
	five, err := src.DeviceEvents(ctx, ids[0], 5)
	if err != nil || len(five) != 5 || five[4].Detail != "account=line1 peer=198.51.100.7:5060 method=INVITE n=26" {
		t.Fatalf("DeviceEvents(limit 5) = %+v, %v", five, err)
	}
	if _, err := src.DeviceEvents(ctx, ids[0], 0); err == nil {
		t.Fatalf("DeviceEvents(limit 0) succeeded")
	}
}

// seedFinding stores a critical call.premium finding naming dev, as the
// anomaly detector would, whose summary carries markup.
func (e *env) seedFinding(t *testing.T, dev store.DeviceID) {
	t.Helper()
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	f := api.Finding{ID: 7, Rule: "call.premium", Severity: "critical", Time: at, Devices: []string{string(dev)},
		Summary: `a call to a premium-rate number <script>alert(1)</script>`, Recommended: []string{"check the dialling policy"},
		Responses: []api.FindingResponse{{Kind: "block_outbound", Device: string(dev), Outcome: "done"}}}
	data, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.fleet.PutAnomalyFinding(ctx, store.AnomalyFinding{ID: f.ID, Time: at, Rule: f.Rule, Severity: 2,
		Devices: []store.DeviceID{dev}, Data: data}); err != nil {
		t.Fatalf("PutAnomalyFinding: %v", err)
	}
}

// TestFindingsPages: the anomaly detector's findings are on the events
// page (all) and on the device page of each device they name, with their
// responses, for the roles that read events; a viewer's device page has
// none; text from the finding is escaped.
func TestFindingsPages(t *testing.T) {
	e := newEnv(t, envOptions{})
	devs := e.seedDevices(t, 2)
	sessions := roleSessions(t, e)
	hc := e.client(t, nil)
	e.seedFinding(t, devs[0])
	escaped := "a call to a premium-rate number &lt;script&gt;alert(1)&lt;/script&gt;"
	for _, path := range []string{"/console/events", "/console/devices/" + string(devs[0]), "/console/events?device=" + string(devs[0])} {
		got := e.do(t, hc, http.MethodGet, path, nil, sessions[adminauth.RoleOperator], "", testUA)
		if got.status != http.StatusOK || !strings.Contains(got.body, "call.premium") || !strings.Contains(got.body, escaped) ||
			!strings.Contains(got.body, "block_outbound") || !strings.Contains(got.body, "check the dialling policy") {
			t.Fatalf("GET %s as an operator = %d, want the finding (escaped):\n%s", path, got.status, got.body)
		}
		if strings.Contains(got.body, "<script>alert") {
			t.Fatalf("GET %s: the finding's text is not escaped", path)
		}
	}
	// The other device's page names no finding.
	got := e.do(t, hc, http.MethodGet, "/console/devices/"+string(devs[1]), nil, sessions[adminauth.RoleAuditor], "", testUA)
	if got.status != http.StatusOK || !strings.Contains(got.body, "Anomaly findings") || strings.Contains(got.body, "call.premium") {
		t.Fatalf("GET the other device as an auditor = %d, want the findings section without this finding:\n%s", got.status, got.body)
	}
	// A viewer reads devices, not events: no findings on the device page.
	got = e.do(t, hc, http.MethodGet, "/console/devices/"+string(devs[0]), nil, sessions[adminauth.RoleViewer], "", testUA)
	if got.status != http.StatusOK || strings.Contains(got.body, "Anomaly findings") || strings.Contains(got.body, "call.premium") {
		t.Fatalf("GET the device as a viewer = %d, want no findings:\n%s", got.status, got.body)
	}
}
