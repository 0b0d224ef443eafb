package console

import (
	"fmt"
	"testing"
	"time"

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
