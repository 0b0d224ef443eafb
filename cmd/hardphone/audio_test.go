package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/history"
	"github.com/hardphone/hardphone/system"
	"github.com/hardphone/hardphone/test"
)

func TestAudioFlags(t *testing.T) {
	pulse := config.Audio{Device: "pulse", Input: "usb_mic", Output: "usb_headset", Server: "unix:/run/p"}
	tests := []struct {
		name    string
		file    config.Audio
		flags   audioFlags
		want    config.Audio
		wantErr string
	}{
		{"no flags keep the file", pulse, audioFlags{}, pulse, ""},
		{"mic only", pulse, audioFlags{input: "other_mic"},
			config.Audio{Device: "pulse", Input: "other_mic", Output: "usb_headset", Server: "unix:/run/p"}, ""},
		{"device from none", config.Audio{Device: "none"}, audioFlags{device: "pulse"}, config.Audio{Device: "pulse"}, ""},
		{"another device drops the file's names", pulse, audioFlags{device: "alsa", input: "hw:1,0", output: "hw:1,0"},
			config.Audio{Device: "alsa", Input: "hw:1,0", Output: "hw:1,0"}, ""},
		{"same device keeps the names", pulse, audioFlags{device: "pulse", output: "hp_null"},
			config.Audio{Device: "pulse", Input: "usb_mic", Output: "hp_null", Server: "unix:/run/p"}, ""},
		{"off", pulse, audioFlags{device: "none"}, config.Audio{Device: "none"}, ""},
		{"unknown device", pulse, audioFlags{device: "oss"}, config.Audio{}, "audio.device"},
		{"alsa needs both", config.Audio{Device: "none"}, audioFlags{device: "alsa", input: "hw:0,0"}, config.Audio{}, "audio.input"},
		{"names without a device", config.Audio{Device: "none"}, audioFlags{input: "usb_mic"}, config.Audio{}, "need a sound device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{Audio: tt.file}
			err := tt.flags.apply(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("apply = %v, want an error with %q", err, tt.wantErr)
				}
				if cfg.Audio != tt.file {
					t.Fatalf("a refused flag changed the config: %+v", cfg.Audio)
				}
				return
			}
			if err != nil {
				t.Fatalf("apply = %v", err)
			}
			if cfg.Audio != tt.want {
				t.Fatalf("audio = %+v, want %+v", cfg.Audio, tt.want)
			}
		})
	}
	// A usage mistake exits 2 before anything is opened.
	var e usageError
	if err := (&audioFlags{input: "x"}).apply(&config.Config{Audio: config.Audio{Device: "none"}}); !errors.As(err, &e) {
		t.Fatalf("mic without a device = %v, want a usage error", err)
	}
}

func TestAudioCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PulseAudio")
	}
	p := test.StartPulse(t)
	var out, errb bytes.Buffer
	if rc := run([]string{"audio", "--pulse-server", p.Server}, &out, &errb); rc != 0 {
		t.Fatalf("hardphone audio = %d: %s", rc, errb.String())
	}
	text := out.String()
	for _, want := range []string{"--mic     " + test.PulseMic + " (default)", "--speaker " + test.PulseSpeaker + " (default)", "ALSA hardware (--audio alsa):"} {
		if !strings.Contains(text, want) {
			t.Errorf("hardphone audio printed\n%s\nwant a line with %q", text, want)
		}
	}
	out.Reset()
	if rc := run([]string{"audio", "--json", "--pulse-server", p.Server}, &out, &errb); rc != 0 {
		t.Fatalf("hardphone audio --json = %d: %s", rc, errb.String())
	}
	var list system.AudioDevices
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		t.Fatalf("hardphone audio --json: %v\n%s", err, out.String())
	}
	found := false
	for _, d := range list.Pulse {
		if d.Name == test.PulseMic && d.Kind == "capture" && d.Default {
			found = true
		}
	}
	if !found || list.PulseError != "" {
		t.Fatalf("hardphone audio --json = %+v, want %s as the default capture device", list, test.PulseMic)
	}
	// No server there: said, and still a listing (exit 0).
	out.Reset()
	dead := "unix:" + filepath.Join(t.TempDir(), "native")
	if rc := run([]string{"audio", "--pulse-server", dead}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "no server:") {
		t.Fatalf("hardphone audio with no server = %d\n%s", rc, out.String())
	}
}

func TestHistoryOutcome(t *testing.T) {
	for _, tt := range []struct {
		e    history.Entry
		want string
	}{
		{history.Entry{Direction: "in", Answered: true, Duration: 61500 * time.Millisecond}, "1m2s"},
		{history.Entry{Direction: "in"}, "missed"},
		{history.Entry{Direction: "out", EndReason: "remote busy"}, "missed"},
		{history.Entry{Direction: "out", EndReason: "refused by the dialling policy"}, "refused"},
	} {
		if got := outcomeOf(tt.e); got != tt.want {
			t.Errorf("outcomeOf(%+v) = %q, want %q", tt.e, got, tt.want)
		}
	}
}
