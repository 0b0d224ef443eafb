//go:build linux && (amd64 || arm64 || arm || 386 || riscv64 || loong64)

package audio

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// No ALSA device can exist in the build container (snd-aloop and
// snd-dummy cannot be loaded there), so these tests cover what happens
// before the first PCM ioctl and the refusal of a node that is not a PCM.

func TestOpenALSAMissing(t *testing.T) {
	if _, err := os.Stat("/dev/snd/pcmC31D31p"); err == nil {
		t.Skip("this machine has a card 31")
	}
	tests := []struct {
		name string
		open func() error
		want error
	}{
		{"sink no card", func() error { _, err := OpenALSASink("hw:31,31", 8000); return err }, ErrNoDevice},
		{"source no card", func() error { _, err := OpenALSASource("hw:31,31", 16000); return err }, ErrNoDevice},
		{"unknown card ID", func() error { _, err := OpenALSASink("hw:NoSuchCardHere,0", 8000); return err }, ErrNoDevice},
		{"plugin name", func() error { _, err := OpenALSASink("default", 8000); return err }, errBadOption},
		{"bad rate", func() error { _, err := OpenALSASink("hw:0,0", 11025); return err }, ErrUnsupportedFormat},
		{"bad option", func() error { _, err := OpenALSASource("hw:0,0", 8000, ALSAPeriods(99)); return err }, errBadOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.open(); !errors.Is(err, tt.want) {
				t.Fatalf("open = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestALSARefusesNonPCM runs the setup on character devices that are not
// PCMs: the kernel refuses SNDRV_PCM_IOCTL_PVERSION and the open fails
// before any parameter is touched.
func TestALSARefusesNonPCM(t *testing.T) {
	for _, path := range []string{"/dev/null", "/dev/zero"} {
		t.Run(path, func(t *testing.T) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Skipf("open %s: %v", path, err)
			}
			defer f.Close()
			cfg, err := newALSAConfig(nil)
			if err != nil {
				t.Fatal(err)
			}
			p := &alsaPCM{path: path, fd: int(f.Fd())}
			err = p.setup(&cfg, 8000)
			if err == nil || !strings.Contains(err.Error(), "PVERSION") {
				t.Fatalf("setup(%s) = %v, want a PVERSION error", path, err)
			}
		})
	}
	// A regular file is not even a character device.
	f, err := os.Create(t.TempDir() + "/pcm")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, _ := newALSAConfig(nil) // defaults cannot fail
	p := &alsaPCM{path: f.Name(), fd: int(f.Fd())}
	if err := p.setup(&cfg, 8000); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("setup(regular file) = %v, want ErrNoDevice", err)
	}
}
