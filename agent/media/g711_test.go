package media

import "testing"

// TestToneDetector checks the test's own Goertzel detector through a G.711
// round trip: it must find the tone it was given and refuse another.
func TestToneDetector(t *testing.T) {
	for _, c := range []Codec{PCMU, PCMA} {
		src := &toneSource{freq: 440}
		var got []int16
		frame := make([]int16, frameSamples)
		for i := 0; i < 10; i++ {
			if _, err := src.ReadFrame(frame); err != nil {
				t.Fatal(err)
			}
			got = c.decode(got, c.encode(nil, frame))
		}
		if err := toneCheck(got, 440); err != nil {
			t.Fatalf("%v: toneCheck(440 Hz tone, 440) = %v, want nil", c, err)
		}
		if err := toneCheck(got, 660); err == nil {
			t.Fatalf("%v: toneCheck(440 Hz tone, 660) = nil, want error", c)
		}
		if err := toneCheck(make([]int16, 1600), 440); err == nil {
			t.Fatalf("%v: toneCheck(silence, 440) = nil, want error", c)
		}
	}
}

// TestG711KnownValues pins a few code words of ITU-T G.711 (μ-law 0xFF and
// A-law 0xD5 are the zero-level words; full scale is 0x80 / 0xAA).
func TestG711KnownValues(t *testing.T) {
	if got := PCMU.encode(nil, []int16{0})[0]; got != 0xFF {
		t.Fatalf("μ-law(0) = %#x, want 0xff", got)
	}
	if got := PCMA.encode(nil, []int16{0})[0]; got != 0xD5 {
		t.Fatalf("A-law(0) = %#x, want 0xd5", got)
	}
	if got := PCMU.encode(nil, []int16{32767})[0]; got != 0x80 {
		t.Fatalf("μ-law(32767) = %#x, want 0x80", got)
	}
	if got := PCMA.encode(nil, []int16{32767})[0]; got != 0xAA {
		t.Fatalf("A-law(32767) = %#x, want 0xaa", got)
	}
}
