package g722

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

// codecDelay is the delay through the transmit and receive QMF in samples:
// each 24-tap filter delays by 11.5 samples at 16 kHz, and the pairing of the
// synthesis outputs makes the whole chain line up at 22.
const codecDelay = 22

// TestQuality encodes and decodes tones and a chirp and checks the
// signal-to-noise ratio after the codec delay. The floors sit about 3 dB
// below what this implementation measures (1 kHz at -6 dBFS: 47.5 dB;
// 300+3400 Hz: 35.7 dB; 6 kHz in the upper band: 27.3 dB; 50..7950 Hz
// chirp: 25.9 dB), and since the output is bit-exact with ffmpeg's (see
// TestInteropFFmpeg) they hold for ffmpeg's G.722 too.
func TestQuality(t *testing.T) {
	floors := map[string]float64{
		"tone_1k_-6dBFS":     44,
		"tone_300_3400":      32,
		"tone_6k_upper_band": 24,
		"chirp_50_7950":      23,
	}
	for _, s := range testSignals() {
		floor, ok := floors[s.name]
		if !ok {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			dec := NewDecoder().Decode(nil, NewEncoder().Encode(nil, s.pcm))
			if lag := bestLag(s.pcm, dec, 64); lag != codecDelay {
				t.Fatalf("delay of decode(encode(%s)) = %d samples, want %d", s.name, lag, codecDelay)
			}
			// Skip the first 100 ms while the scale factors adapt from
			// their reset values.
			got := snr(s.pcm, dec, codecDelay, SampleRate/10)
			t.Logf("SNR %s = %.2f dB", s.name, got)
			if got < floor {
				t.Errorf("SNR of decode(encode(%s)) = %.2f dB, want >= %.0f dB", s.name, got, floor)
			}
		})
	}
}

// TestSilenceStaysQuiet: digital silence must decode to near silence, not
// to a tone or noise from a drifting predictor.
func TestSilenceStaysQuiet(t *testing.T) {
	dec := NewDecoder().Decode(nil, NewEncoder().Encode(nil, make([]int16, signalSamples)))
	for i, s := range dec {
		if s < -4 || s > 4 {
			t.Fatalf("decode(encode(silence))[%d] = %d, want |x| <= 4", i, s)
		}
	}
}

// TestLengths: one octet per two samples, two samples per octet.
func TestLengths(t *testing.T) {
	for _, n := range []int{0, 2, 320, 640, 1000} {
		pcm := make([]int16, n)
		enc := NewEncoder().Encode(nil, pcm)
		if len(enc) != n/2 {
			t.Errorf("len(Encode(%d samples)) = %d, want %d", n, len(enc), n/2)
		}
		if dec := NewDecoder().Decode(nil, enc); len(dec) != n {
			t.Errorf("len(Decode(%d octets)) = %d, want %d", len(enc), len(dec), n)
		}
	}
}

// TestStreaming: encoding or decoding a stream in pieces of any size,
// including odd ones that leave a sample held, gives the same octets and
// samples as one call, and output is appended after what dst held.
func TestStreaming(t *testing.T) {
	pcm := testSignals()[5].pcm // the chirp
	whole := NewEncoder().Encode(nil, pcm)
	wholeDec := NewDecoder().Decode(nil, whole)
	for _, size := range []int{1, 2, 3, 7, 159, 320, 321} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			e := NewEncoder()
			got := []byte{0xAA}
			for i := 0; i < len(pcm); i += size {
				got = e.Encode(got, pcm[i:min(i+size, len(pcm))])
				if held := (min(i+size, len(pcm)) % 2) == 1; e.Held() != held {
					t.Fatalf("Held() after %d samples = %v, want %v", min(i+size, len(pcm)), e.Held(), held)
				}
			}
			if got[0] != 0xAA || !bytes.Equal(got[1:], whole) {
				t.Fatalf("Encode in pieces of %d differs from one call", size)
			}
			d := NewDecoder()
			dec := []int16{-7}
			for i := 0; i < len(whole); i += size {
				dec = d.Decode(dec, whole[i:min(i+size, len(whole))])
			}
			if dec[0] != -7 || !slices.Equal(dec[1:], wholeDec) {
				t.Fatalf("Decode in pieces of %d differs from one call", size)
			}
		})
	}
}

// TestReset: after Reset, an encoder or decoder that has run behaves as a
// new one, and the held sample is gone.
func TestReset(t *testing.T) {
	sig := testSignals()
	noise, tone := sig[6].pcm, sig[1].pcm
	e := NewEncoder()
	e.Encode(nil, noise[:321])
	e.Reset()
	if e.Held() {
		t.Fatalf("Held() after Reset = true, want false")
	}
	if got, want := e.Encode(nil, tone), NewEncoder().Encode(nil, tone); !bytes.Equal(got, want) {
		t.Fatalf("Encode after Reset differs from a new encoder")
	}
	d := NewDecoder()
	stream := NewEncoder().Encode(nil, tone)
	d.Decode(nil, NewEncoder().Encode(nil, noise))
	d.Reset()
	if got, want := d.Decode(nil, stream), NewDecoder().Decode(nil, stream); !slices.Equal(got, want) {
		t.Fatalf("Decode after Reset differs from a new decoder")
	}
}

// TestNoAllocs: with room in dst, the hot path allocates nothing.
func TestNoAllocs(t *testing.T) {
	pcm := testSignals()[1].pcm[:FrameSamples20ms]
	e, d := NewEncoder(), NewDecoder()
	enc := make([]byte, 0, FrameSamples20ms/2)
	dec := make([]int16, 0, FrameSamples20ms)
	allocs := testing.AllocsPerRun(100, func() {
		enc = e.Encode(enc[:0], pcm)
		dec = d.Decode(dec[:0], enc)
	})
	if allocs != 0 {
		t.Errorf("Encode+Decode of a 20 ms frame = %.1f allocations, want 0", allocs)
	}
}
