package pid1

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/test"
)

func TestMountFlags(t *testing.T) {
	tests := []struct {
		in        string
		wantFlags uintptr
		wantData  string
	}{
		{"", 0, ""},
		{"nosuid,nodev,noexec", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"ro,noatime,errors=remount-ro", unix.MS_RDONLY | unix.MS_NOATIME, "errors=remount-ro"},
		{"nosuid,mode=0755,size=1m", unix.MS_NOSUID, "mode=0755,size=1m"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			f, d := mountFlags(tt.in)
			if f != tt.wantFlags || d != tt.wantData {
				t.Errorf("mountFlags(%q) = %#x, %q, want %#x, %q", tt.in, f, d, tt.wantFlags, tt.wantData)
			}
		})
	}
}

// TestMarkerRoundTrip: what PID 1 prints, the test harness parses back,
// values with spaces and quotes included.
func TestMarkerRoundTrip(t *testing.T) {
	var b bytes.Buffer
	m := markers{start: time.Now(), w: &b}
	m.print("install-rejected", "error", `bundle "x": signature not trusted`, "slot", "A", "empty", "")
	line := strings.TrimSpace(b.String())
	got, ok := test.ParseMarker(line)
	if !ok {
		t.Fatalf("ParseMarker(%q) = not a marker", line)
	}
	want := map[string]string{"error": `bundle "x": signature not trusted`, "slot": "A", "empty": ""}
	if got.Event != "install-rejected" {
		t.Errorf("event = %q, want install-rejected", got.Event)
	}
	for k, v := range want {
		if got.Fields[k] != v {
			t.Errorf("field %s = %q, want %q (line %s)", k, got.Fields[k], v, line)
		}
	}
	if _, ok := got.Fields["t"]; !ok {
		t.Errorf("marker has no t= field: %s", line)
	}
}

// TestEvaluate: the rules that decide when PID 1 stops petting the
// watchdog.
func TestEvaluate(t *testing.T) {
	b, err := board.Lookup("qemu-arm64")
	if err != nil {
		t.Fatalf("board: %v", err)
	}
	h := b.Health
	now := time.Now()
	tests := []struct {
		name string
		set  func(s *supervisor)
		want string // "" healthy
	}{
		{"fresh boot", func(s *supervisor) {}, ""},
		{"agent answering", func(s *supervisor) { s.agentPID, s.lastAnswer = 42, now }, ""},
		{"agent silent", func(s *supervisor) { s.agentPID, s.agentStarted = 42, now.Add(-h.Liveness-time.Second) }, "silent"},
		{"crash loop", func(s *supervisor) { s.gaveUp, s.agentExits = true, h.MaxAgentExits }, "exited"},
		{"trial within deadline", func(s *supervisor) { s.trial = true }, ""},
		{"trial past deadline", func(s *supervisor) {
			s.trial, s.start = true, now.Add(-h.TrialDeadline-time.Second)
		}, "not marked good"},
		{"trial passed", func(s *supervisor) {
			s.trial, s.markedGood, s.confirmed, s.start = true, true, true, now.Add(-h.TrialDeadline-time.Second)
		}, ""},
		{"trial confirmed, registrar unreachable", func(s *supervisor) {
			s.trial, s.confirmed, s.start = true, true, now.Add(-h.TrialDeadline-time.Second)
		}, ""},
		{"good slot, no registrar for long", func(s *supervisor) { s.start = now.Add(-time.Hour) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			s := newSupervisor(b, markers{start: now, w: &out}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			// Without a watchdog, fail also queues a reset request on the
			// (buffered) signal channel; nothing reads it here.
			tt.set(s)
			s.evaluate(now)
			if tt.want == "" {
				if s.unhealthy != "" || !s.healthy.Load() {
					t.Fatalf("evaluate() unhealthy %q, want healthy", s.unhealthy)
				}
				return
			}
			if !strings.Contains(s.unhealthy, tt.want) || s.healthy.Load() {
				t.Fatalf("evaluate() unhealthy %q, want it to contain %q", s.unhealthy, tt.want)
			}
			if !strings.Contains(out.String(), "HARDPHONE-MARKER unhealthy") {
				t.Errorf("no unhealthy marker printed: %q", out.String())
			}
		})
	}
}

// TestRebootIntoFleetFirmware: a bundle the fleet's director assigned is
// installed by the agent in the other slot; PID 1 reboots into it once
// this boot is confirmed and no call is up, never during a trial or a
// call, and says why it waits.
func TestRebootIntoFleetFirmware(t *testing.T) {
	b, err := board.Lookup("qemu-arm64")
	if err != nil {
		t.Fatalf("board: %v", err)
	}
	installed := &control.ProvisioningStatus{Firmware: &control.FirmwareStatus{Target: "hardphone-2.raucb", Version: "2", State: control.FirmwareInstalled}}
	call := []sip.CallStatus{{ID: "c1", State: "established"}}
	tests := []struct {
		name      string
		confirmed bool
		prov      *control.ProvisioningStatus
		calls     []sip.CallStatus
		want      string // rebootFor
		marker    string // in the output
	}{
		{"installed, confirmed, idle", true, installed, nil, "fleet-update", ""},
		{"installed during a call", true, installed, call, "", "reboot-waits"},
		{"installed during this boot's trial", false, installed, nil, "", ""},
		{"waiting for the window", true, &control.ProvisioningStatus{Firmware: &control.FirmwareStatus{State: control.FirmwareWaiting}}, nil, "", ""},
		{"running", true, &control.ProvisioningStatus{Firmware: &control.FirmwareStatus{State: control.FirmwareRunning}}, nil, "", ""},
		{"no fleet", true, nil, nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			s := newSupervisor(b, markers{start: time.Now(), w: &out}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			s.confirmed = tt.confirmed
			s.onStatus(&control.Status{Accounts: []sip.AccountStatus{{Name: "line1", Registered: true, Calls: tt.calls}}, Provisioning: tt.prov})
			if s.rebootFor != tt.want {
				t.Fatalf("onStatus() rebootFor = %q, want %q", s.rebootFor, tt.want)
			}
			if tt.marker != "" && !strings.Contains(out.String(), "HARDPHONE-MARKER "+tt.marker) {
				t.Errorf("onStatus() printed %q, want a %s marker", out.String(), tt.marker)
			}
			// Once is enough: the marker is not repeated every poll.
			before := out.Len()
			s.onStatus(&control.Status{Accounts: []sip.AccountStatus{{Name: "line1", Registered: true, Calls: tt.calls}}, Provisioning: tt.prov})
			if tt.marker != "" && out.Len() != before && strings.Contains(out.String()[before:], tt.marker) {
				t.Errorf("second poll printed %q again", tt.marker)
			}
		})
	}
}
