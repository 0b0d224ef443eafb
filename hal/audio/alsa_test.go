package audio

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func lookupFixed(id string) (int, error) {
	if id == "Headset" {
		return 3, nil
	}
	return 0, fmt.Errorf("card %q: %w", id, ErrNoDevice)
}

func TestParseALSADevice(t *testing.T) {
	tests := []struct {
		in      string
		want    alsaDevice
		wantErr error
	}{
		{"hw:0,0", alsaDevice{0, 0}, nil},
		{"hw:1", alsaDevice{1, 0}, nil},
		{"hw:2,3", alsaDevice{2, 3}, nil},
		{"hw:CARD=1,DEV=2", alsaDevice{1, 2}, nil},
		{"hw:Headset,1", alsaDevice{3, 1}, nil},
		{"hw:CARD=Headset,DEV=0", alsaDevice{3, 0}, nil},
		{"hw:Nope,0", alsaDevice{}, ErrNoDevice},
		{"plughw:0,0", alsaDevice{}, errBadOption},
		{"default", alsaDevice{}, errBadOption},
		{"hw:", alsaDevice{}, errBadOption},
		{"hw:-1,0", alsaDevice{}, errBadOption},
		{"hw:256,0", alsaDevice{}, errBadOption},
		{"hw:0,256", alsaDevice{}, errBadOption},
		{"hw:0,x", alsaDevice{}, errBadOption},
		{"hw:0,", alsaDevice{}, errBadOption},
		{"hw:../../etc,0", alsaDevice{}, errBadOption},
		{"hw:a/b,0", alsaDevice{}, errBadOption},
		{"hw:" + strings.Repeat("A", 16) + ",0", alsaDevice{}, errBadOption},
		{"hw:0," + strings.Repeat("0", 70), alsaDevice{}, errBadOption},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseALSADevice(tt.in, lookupFixed)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("parseALSADevice(%q) = %+v, %v, want %v", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseALSADevice(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestALSADevicePath(t *testing.T) {
	d := alsaDevice{card: 1, device: 2}
	if got, want := d.path(false), "/dev/snd/pcmC1D2p"; got != want {
		t.Fatalf("path(playback) = %q, want %q", got, want)
	}
	if got, want := d.path(true), "/dev/snd/pcmC1D2c"; got != want {
		t.Fatalf("path(capture) = %q, want %q", got, want)
	}
}

func TestALSAOptions(t *testing.T) {
	tests := []struct {
		name string
		opt  ALSAOption
	}{
		{"period too short", ALSAPeriod(0)},
		{"period too long", ALSAPeriod(1 << 40)},
		{"one period", ALSAPeriods(1)},
		{"timeout too short", ALSATimeout(1)},
		{"nil logger", ALSALogger(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newALSAConfig([]ALSAOption{tt.opt}); !errors.Is(err, errBadOption) {
				t.Fatalf("newALSAConfig(%s) = %v, want errBadOption", tt.name, err)
			}
		})
	}
	cfg, err := newALSAConfig(nil)
	if err != nil {
		t.Fatalf("newALSAConfig() = %v", err)
	}
	for _, tt := range []struct{ rate, period, buffer uint32 }{{8000, 160, 640}, {16000, 320, 1280}, {48000, 960, 3840}} {
		if p, b := alsaBufferFrames(&cfg, int(tt.rate)); p != tt.period || b != tt.buffer {
			t.Errorf("alsaBufferFrames(default, %d) = %d, %d, want %d, %d", tt.rate, p, b, tt.period, tt.buffer)
		}
	}
}

// FuzzParseALSADevice: any accepted name lies inside the node-name bounds
// and its canonical form parses back to the same device.
//
//fuzz:budget 300000
func FuzzParseALSADevice(f *testing.F) {
	for _, s := range []string{"hw:0,0", "hw:1", "hw:CARD=Headset,DEV=2", "hw:Headset,1", "plughw:0", "hw:-1,0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseALSADevice(s, lookupFixed)
		if err != nil {
			return
		}
		if d.card < 0 || d.card > maxALSACard || d.device < 0 || d.device > maxALSADevice {
			t.Fatalf("parseALSADevice(%q) = %+v: out of range", s, d)
		}
		canon := fmt.Sprintf("hw:%d,%d", d.card, d.device)
		if d2, err := parseALSADevice(canon, lookupFixed); err != nil || d2 != d {
			t.Fatalf("parseALSADevice(%q) = %+v, %v, want %+v", canon, d2, err, d)
		}
	})
}
