package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

func testReports(t *testing.T, b Backend) {
	s := open(t, b)
	d, _ := enrol(t, s, 0, t0)
	other, _ := enrol(t, s, 1, t0)
	_, err := s.LatestReport(ctx, d.ID)
	wantErr(t, "LatestReport(no report yet)", err, store.ErrNotFound)
	h, err := s.ReportHistory(ctx, d.ID, 10)
	noErr(t, "ReportHistory(no report yet)", err)
	equal(t, "ReportHistory(no report yet)", len(h), 0)

	var want []store.Report // newest first
	for n := 1; n <= 3; n++ {
		r := report(n, at(time.Duration(n)*time.Minute))
		noErr(t, "PutReport", s.PutReport(ctx, d.ID, r))
		want = append([]store.Report{storedReport(r)}, want...)
	}
	// An empty report body is kept as empty (nil) collections.
	bare := store.Report{ReceivedAt: at(4 * time.Minute), Firmware: store.FirmwareVersion{Version: "2.0"},
		CertNotAfter: at(time.Hour), Slots: []store.SlotReport{}, Counters: map[string]uint64{}, Signed: []byte{1}}
	noErr(t, "PutReport(bare)", s.PutReport(ctx, d.ID, bare))
	want = append([]store.Report{storedReport(bare)}, want...)

	latest, err := s.LatestReport(ctx, d.ID)
	noErr(t, "LatestReport", err)
	equal(t, "LatestReport", latest, want[0])
	h, err = s.ReportHistory(ctx, d.ID, 10)
	noErr(t, "ReportHistory", err)
	equal(t, "ReportHistory(10)", h, want)
	h, err = s.ReportHistory(ctx, d.ID, 2)
	noErr(t, "ReportHistory", err)
	equal(t, "ReportHistory(2)", h, want[:2])
	// Another device's history is its own.
	_, err = s.LatestReport(ctx, other.ID)
	wantErr(t, "LatestReport(other device)", err, store.ErrNotFound)

	// LastSeen follows the newest ReceivedAt and never goes back.
	got, err := s.GetDevice(ctx, d.ID)
	noErr(t, "GetDevice", err)
	equal(t, "GetDevice.LastSeen", got.LastSeen, norm(at(4*time.Minute)))
	old := report(9, at(time.Second))
	noErr(t, "PutReport(old ReceivedAt)", s.PutReport(ctx, d.ID, old))
	got, err = s.GetDevice(ctx, d.ID)
	noErr(t, "GetDevice", err)
	equal(t, "GetDevice.LastSeen after an older report", got.LastSeen, norm(at(4*time.Minute)))
	// The older report is still the latest stored: order is arrival.
	latest, err = s.LatestReport(ctx, d.ID)
	noErr(t, "LatestReport", err)
	equal(t, "LatestReport after an older report", latest, storedReport(old))

	// A mutated input after PutReport does not reach the store.
	r := report(20, at(time.Hour))
	noErr(t, "PutReport", s.PutReport(ctx, d.ID, r))
	r.Signed[0], r.Counters["tls_handshake_failures"], r.Slots[0].Name = 'X', 999, "Z"
	latest, err = s.LatestReport(ctx, d.ID)
	noErr(t, "LatestReport", err)
	equal(t, "LatestReport after mutating the input", latest, storedReport(report(20, at(time.Hour))))
}

func testReportHistoryBound(t *testing.T, b Backend) {
	s := open(t, b)
	d, _ := enrol(t, s, 0, t0)
	const total = store.MaxReportHistory + 7
	for n := 1; n <= total; n++ {
		noErr(t, fmt.Sprintf("PutReport(%d)", n), s.PutReport(ctx, d.ID, report(n, at(time.Duration(n)*time.Second))))
		if got, want := b.StoredReports(t, s, d.ID), min(n, store.MaxReportHistory); got != want {
			t.Fatalf("after %d reports the store holds %d, want %d", n, got, want)
		}
	}
	h, err := s.ReportHistory(ctx, d.ID, store.MaxReportHistory)
	noErr(t, "ReportHistory", err)
	if len(h) != store.MaxReportHistory {
		t.Fatalf("ReportHistory after %d reports has %d, want %d", total, len(h), store.MaxReportHistory)
	}
	equal(t, "ReportHistory newest", h[0], storedReport(report(total, at(total*time.Second))))
	oldest := total - store.MaxReportHistory + 1
	equal(t, "ReportHistory oldest kept", h[len(h)-1], storedReport(report(oldest, at(time.Duration(oldest)*time.Second))))
	_, err = s.ReportHistory(ctx, d.ID, store.MaxReportHistory+1)
	wantErr(t, "ReportHistory(limit over the bound)", err, store.ErrInvalid)
}

func testReportRefusals(t *testing.T, b Backend) {
	s := open(t, b)
	d, _ := enrol(t, s, 0, t0)
	noErr(t, "PutReport", s.PutReport(ctx, d.ID, report(1, at(time.Minute))))
	before := snap(t, s)
	mod := func(f func(*store.Report)) store.Report {
		r := report(2, at(2*time.Minute))
		f(&r)
		return r
	}
	manyCounters := map[string]uint64{}
	for i := 0; i <= store.MaxCounters; i++ {
		manyCounters[fmt.Sprintf("c%d", i)] = 1
	}
	tests := []struct {
		name string
		id   store.DeviceID
		r    store.Report
		want error
	}{
		{"unknown device", store.NewDeviceID(), report(2, at(2*time.Minute)), store.ErrNotFound},
		{"bad device ID", "dev-?", report(2, at(2*time.Minute)), store.ErrInvalid},
		{"no signed bytes", d.ID, mod(func(r *store.Report) { r.Signed = nil }), store.ErrInvalid},
		{"signed too large", d.ID, mod(func(r *store.Report) { r.Signed = make([]byte, store.MaxSignedReport+1) }), store.ErrInvalid},
		{"zero time", d.ID, mod(func(r *store.Report) { r.ReceivedAt = time.Time{} }), store.ErrInvalid},
		{"year 10000", d.ID, mod(func(r *store.Report) { r.CertNotAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), store.ErrInvalid},
		{"bad firmware version", d.ID, mod(func(r *store.Report) { r.Firmware.Version = "1.0 beta" }), store.ErrInvalid},
		{"security version over int64", d.ID, mod(func(r *store.Report) { r.Firmware.SecurityVersion = 1 << 63 }), store.ErrInvalid},
		{"too many slots", d.ID, mod(func(r *store.Report) { r.Slots = make([]store.SlotReport, store.MaxSlots+1) }), store.ErrInvalid},
		{"bad slot name", d.ID, mod(func(r *store.Report) { r.Slots[1].Name = "B\n" }), store.ErrInvalid},
		{"bad boot slot", d.ID, mod(func(r *store.Report) { r.Boot.Slot = "../A" }), store.ErrInvalid},
		{"too many counters", d.ID, mod(func(r *store.Report) { r.Counters = manyCounters }), store.ErrInvalid},
		{"bad counter name", d.ID, mod(func(r *store.Report) { r.Counters = map[string]uint64{"a b": 1} }), store.ErrInvalid},
		{"counter over 2^53", d.ID, mod(func(r *store.Report) { r.Counters = map[string]uint64{"x": 1<<53 + 1} }), store.ErrInvalid},
		{"too many findings", d.ID, mod(func(r *store.Report) { r.Lockdown.Findings = make([]string, store.MaxFindings+1) }), store.ErrInvalid},
		{"finding with a control byte", d.ID, mod(func(r *store.Report) { r.Lockdown.Findings = []string{"ok\x1b[2J"} }), store.ErrInvalid},
		{"finding too long", d.ID, mod(func(r *store.Report) { r.Lockdown.Findings = []string{strings.Repeat("x", store.MaxTextLen+1)} }), store.ErrInvalid},
		{"negative uptime", d.ID, mod(func(r *store.Report) { r.Uptime = -time.Second }), store.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, "PutReport("+tt.name+")", s.PutReport(ctx, tt.id, tt.r), tt.want)
			unchanged(t, s, before, tt.name)
		})
	}
	_, err := s.LatestReport(ctx, store.NewDeviceID())
	wantErr(t, "LatestReport(unknown device)", err, store.ErrNotFound)
	_, err = s.ReportHistory(ctx, store.NewDeviceID(), 1)
	wantErr(t, "ReportHistory(unknown device)", err, store.ErrNotFound)
	_, err = s.ReportHistory(ctx, d.ID, 0)
	wantErr(t, "ReportHistory(limit 0)", err, store.ErrInvalid)
}
