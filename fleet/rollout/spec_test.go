package rollout

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/store"
)

func devs(n int) []store.DeviceID {
	var out []store.DeviceID
	for i := 0; i < n; i++ {
		out = append(out, store.DeviceID(fmt.Sprintf("dev-%032x", i+1)))
	}
	return out
}

func TestPlan(t *testing.T) {
	d := devs(10)
	tests := []struct {
		name  string
		rings []RingSpec
		want  []int
	}{
		{"canary, 50%, all", []RingSpec{{Name: "c", Devices: []string{string(d[3])}}, {Name: "h", Percent: 50}, {Name: "a", Percent: 100}}, []int{1, 4, 5}},
		{"10%, all", []RingSpec{{Name: "t", Percent: 10}, {Name: "a", Percent: 100}}, []int{1, 9}},
		{"1% rounds up", []RingSpec{{Name: "t", Percent: 1}, {Name: "a", Percent: 100}}, []int{1, 9}},
		{"canaries beyond a percentage leave it empty", []RingSpec{{Name: "c", Devices: []string{string(d[0]), string(d[1])}}, {Name: "t", Percent: 10},
			{Name: "a", Percent: 100}}, []int{2, 0, 8}},
		{"all at once", []RingSpec{{Name: "a", Percent: 100}}, []int{10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rings, err := plan("ro-1", tt.rings, d)
			if err != nil {
				t.Fatalf("plan() error %v", err)
			}
			var got []int
			seen := map[store.DeviceID]bool{}
			for _, r := range rings {
				got = append(got, len(r.Devices))
				for _, x := range r.Devices {
					if seen[x] {
						t.Fatalf("plan() puts %s in two rings", x)
					}
					seen[x] = true
				}
			}
			if !slices.Equal(got, tt.want) || len(seen) != len(d) {
				t.Fatalf("plan() ring sizes = %v covering %d devices, want %v covering %d", got, len(seen), tt.want, len(d))
			}
		})
	}
	// Canaries come first, by name; the order of the rest depends on the
	// rollout, not on enrolment.
	r1, _ := plan("ro-1", []RingSpec{{Name: "c", Devices: []string{string(d[7])}}, {Name: "h", Percent: 50}, {Name: "a", Percent: 100}}, d)
	r2, _ := plan("ro-2", []RingSpec{{Name: "c", Devices: []string{string(d[7])}}, {Name: "h", Percent: 50}, {Name: "a", Percent: 100}}, d)
	if r1[0].Devices[0] != d[7] || slices.Equal(r1[1].Devices, r2[1].Devices) {
		t.Fatalf("plan() = %v and %v: want the canary first and a per-rollout order for the rest", r1, r2)
	}
	if _, err := plan("ro-1", []RingSpec{{Name: "c", Devices: []string{"dev-" + fmt.Sprintf("%032x", 99)}}, {Name: "a", Percent: 100}}, d); !errors.Is(err, ErrInvalid) {
		t.Fatalf("plan(canary outside the group) error %v, want ErrInvalid", err)
	}
}

func TestSpecValidate(t *testing.T) {
	ok := func() Spec {
		return Spec{Kind: KindFirmware, Group: "g", Firmware: "b.raucb", Rings: []RingSpec{{Name: "a", Percent: 100}}}
	}
	tests := []struct {
		name string
		mod  func(*Spec)
	}{
		{"unknown kind", func(s *Spec) { s.Kind = "os" }},
		{"firmware with a document", func(s *Spec) { s.Config = []byte("x") }},
		{"config without a document", func(s *Spec) { s.Kind, s.Firmware = KindConfig, "" }},
		{"bad group", func(s *Spec) { s.Group = "a/b" }},
		{"no ring", func(s *Spec) { s.Rings = nil }},
		{"last ring not all", func(s *Spec) { s.Rings = []RingSpec{{Name: "a", Percent: 50}} }},
		{"percentages going down", func(s *Spec) {
			s.Rings = []RingSpec{{Name: "a", Percent: 50}, {Name: "b", Percent: 20}, {Name: "c", Percent: 100}}
		}},
		{"devices and a percentage", func(s *Spec) {
			s.Rings = []RingSpec{{Name: "a", Devices: []string{string(devs(1)[0])}, Percent: 10}, {Name: "b", Percent: 100}}
		}},
		{"device twice", func(s *Spec) {
			d := string(devs(1)[0])
			s.Rings = []RingSpec{{Name: "a", Devices: []string{d}}, {Name: "b", Devices: []string{d}}, {Name: "c", Percent: 100}}
		}},
		{"bad device", func(s *Spec) {
			s.Rings = []RingSpec{{Name: "a", Devices: []string{"phone-1"}}, {Name: "b", Percent: 100}}
		}},
		{"ring name twice", func(s *Spec) { s.Rings = []RingSpec{{Name: "a", Percent: 10}, {Name: "a", Percent: 100}} }},
		{"ring name with a newline", func(s *Spec) { s.Rings = []RingSpec{{Name: "a\nb", Percent: 100}} }},
		{"threshold over 100", func(s *Spec) { s.MaxFailurePercent = 101 }},
		{"deadline too short", func(s *Spec) { s.Deadline = time.Second }},
		{"bad window", func(s *Spec) { s.Window = "Mon 02:00" }},
		{"too many rings", func(s *Spec) {
			s.Rings = nil
			for i := 1; i <= MaxRings+1; i++ {
				s.Rings = append(s.Rings, RingSpec{Name: fmt.Sprint(i), Percent: min(100, i*10)})
			}
		}},
	}
	for _, tt := range tests {
		s := ok()
		tt.mod(&s)
		if err := s.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%s) = %v, want ErrInvalid", tt.name, err)
		}
	}
	s := ok()
	if err := s.Validate(); err != nil || s.Deadline != DefaultDeadline || s.ReportTimeout != DefaultReportTimeout {
		t.Fatalf("Validate(defaults) = %v, deadline %v, timeout %v", err, s.Deadline, s.ReportTimeout)
	}
}

// report makes a stored report of what a phone says.
func report(t *testing.T, at time.Time, r api.Report) store.Report {
	t.Helper()
	r.DeviceID, r.SentAt, r.Model, r.Serial = "dev-00000000000000000000000000000001", at, "m", "s"
	b, err := api.MarshalReport(r)
	if err != nil {
		t.Fatalf("MarshalReport: %v", err)
	}
	return store.Report{ReceivedAt: at, Signed: b}
}

func TestJudge(t *testing.T) {
	t0 := time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)
	fw := &store.FirmwareTarget{Name: "b", Version: "2.0.0"}
	run := func(v string, good bool, up uint64, slots ...api.Slot) api.Report {
		return api.Report{Firmware: api.Firmware{Version: v}, Boot: api.Boot{MarkedGood: good}, UptimeSeconds: up, Slots: slots}
	}
	newSlot := api.Slot{Name: "B", Version: "2.0.0"}
	badSlot := api.Slot{Name: "B", Version: "2.0.0", Bad: true}
	cfg := func(good, reverted uint64) api.Report {
		return api.Report{Firmware: api.Firmware{Version: "1"}, Provisioning: &api.Provisioning{ConfigVersion: good, RevertedVersion: reverted}}
	}
	tests := []struct {
		name     string
		kind     Kind
		reports  []api.Report // oldest first, one a minute from release
		now      time.Duration
		status   DeviceStatus
		reasonAt string
	}{
		{"booted and marked good", KindFirmware, []api.Report{run("1", true, 100, newSlot), run("2.0.0", false, 10), run("2.0.0", true, 40)}, 5 * time.Minute, DeviceDone, ""},
		{"booted, not yet good", KindFirmware, []api.Report{run("1", true, 100, newSlot), run("2.0.0", false, 10)}, 5 * time.Minute, DeviceUpdating, ""},
		{"booted, then back on the old image", KindFirmware, []api.Report{run("1", true, 100, newSlot), run("2.0.0", false, 10), run("1", true, 20, newSlot)},
			5 * time.Minute, DeviceFailed, reasonRolledBack},
		{"installed, rebooted, still old", KindFirmware, []api.Report{run("1", true, 100, newSlot), run("1", true, 30, newSlot)}, 5 * time.Minute, DeviceFailed, reasonRolledBack},
		// A real phone reboots as soon as the install is done (PID 1, no
		// call up): the first report after release comes from the old
		// slot after the bootloader fell back, with the new one bad.
		{"rolled back before its first report", KindFirmware, []api.Report{run("1", true, 100), run("1", true, 20, badSlot)}, 5 * time.Minute, DeviceFailed, reasonRolledBack},
		{"new slot's install failed", KindFirmware, []api.Report{run("1", true, 100, api.Slot{Name: "B", Version: "unknown", Bad: true})}, 5 * time.Minute, DeviceUpdating, ""},
		{"installed, waiting to reboot", KindFirmware, []api.Report{run("1", true, 100, newSlot), run("1", true, 130, newSlot)}, 5 * time.Minute, DeviceUpdating, ""},
		{"never installed by the deadline", KindFirmware, []api.Report{run("1", true, 100), run("1", true, 130)}, 61 * time.Minute, DeviceFailed, reasonDeadline},
		{"silent", KindFirmware, nil, 121 * time.Minute, DeviceFailed, reasonSilent},
		{"config applied", KindConfig, []api.Report{cfg(6, 0), cfg(7, 0)}, 5 * time.Minute, DeviceDone, ""},
		{"config reverted", KindConfig, []api.Report{cfg(6, 7)}, 5 * time.Minute, DeviceFailed, reasonReverted},
		{"older config still", KindConfig, []api.Report{cfg(6, 0)}, 5 * time.Minute, DeviceUpdating, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stored []store.Report
			for i, r := range tt.reports {
				stored = append([]store.Report{report(t, t0.Add(time.Duration(i+1)*time.Minute), r)}, stored...)
			}
			d := &deviceRecord{Released: true, ReleasedAt: t0, Status: DeviceUpdating, ConfigVersion: 7}
			j := judge{kind: tt.kind, target: fw, deadline: time.Hour, reportTimeout: 2 * time.Hour, now: t0.Add(tt.now)}
			j.judgeDevice(d, stored, t0.Add(-time.Hour))
			if d.Status != tt.status || tt.reasonAt != "" && !hasPrefix(d.Reason, tt.reasonAt) {
				t.Fatalf("judgeDevice() = %s %q, want %s %q...", d.Status, d.Reason, tt.status, tt.reasonAt)
			}
		})
	}
	// A phone that undid the change stays failed whatever it says next.
	d := &deviceRecord{Released: true, ReleasedAt: t0, Status: DeviceFailed, Reason: reasonRolledBack + ": x"}
	j := judge{kind: KindFirmware, target: fw, deadline: time.Hour, reportTimeout: time.Hour, now: t0.Add(time.Minute)}
	if j.judgeDevice(d, []store.Report{report(t, t0.Add(time.Second), run("2.0.0", true, 10))}, t0) || d.Status != DeviceFailed {
		t.Fatalf("judgeDevice(rolled back, then good) = %s, want still failed", d.Status)
	}
}
