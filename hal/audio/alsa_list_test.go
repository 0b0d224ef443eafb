package audio

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseALSAPCMList(t *testing.T) {
	// As Linux 6.1 prints it for snd-aloop and an HDA codec.
	in := "00-00: Loopback PCM : Loopback PCM : playback 8 : capture 8\n" +
		"00-01: Loopback PCM : Loopback PCM : playback 8 : capture 8\n" +
		"01-00: ALC892 Analog : ALC892 Analog : playback 1 : capture 1\n" +
		"01-03: HDMI 0 : HDMI 0 : playback 1\n"
	got, err := parseALSAPCMList([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []ALSADeviceInfo{
		{Name: "hw:0,0", Description: "Loopback PCM", Playback: true, Capture: true},
		{Name: "hw:0,1", Description: "Loopback PCM", Playback: true, Capture: true},
		{Name: "hw:1,0", Description: "ALC892 Analog", Playback: true, Capture: true},
		{Name: "hw:1,3", Description: "HDMI 0", Playback: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parse = %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"garbage\n", "x-0: a : b : playback 1\n", "00-99999: a : b : capture 1\n", "-1-0: a : b\n"} {
		if _, err := parseALSAPCMList([]byte(bad)); err == nil {
			t.Errorf("parse(%q) = nil error, want a refusal", bad)
		}
	}
}

func TestListALSADevices(t *testing.T) {
	root := t.TempDir()
	// No /proc/asound: no cards, no error.
	if devs, err := listALSADevices(filepath.Join(root, "none")); err != nil || devs != nil {
		t.Fatalf("no asound: %v, %v", devs, err)
	}
	write := func(name, s string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("pcm", "00-00: Loopback PCM : Loopback PCM : playback 8 : capture 8\n01-00: USB Audio : USB Audio : capture 1\n")
	write("card0/id", "Loopback\n")
	write("card1/id", "bad/../id\n") // never trusted as a name
	devs, err := listALSADevices(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[0].Card != "Loopback" || devs[1].Card != "" || devs[1].Playback || !devs[1].Capture {
		t.Fatalf("devices = %+v", devs)
	}
	// A listing past the bound is refused, not read whole.
	write("pcm", strings.Repeat("00-00: a : b : playback 1\n", maxProcList/20))
	if _, err := listALSADevices(root); err == nil {
		t.Fatal("oversized /proc listing accepted")
	}
}
