package media

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

var deviceRates = []int{8000, 16000, 32000, 48000}

// sine is n samples of a sine at freq Hz and amplitude amp, at rate Hz.
func sine(n, rate int, freq, amp float64) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))))
	}
	return out
}

// convertFrames runs src through r in 20 ms frames.
func convertFrames(r *resampler, src []int16) []int16 {
	n := r.in * frameMillis / 1000
	var out []int16
	for i := 0; i+n <= len(src); i += n {
		out = r.convert(out, src[i:i+n])
	}
	return out
}

// fitSine returns the amplitude of the best least-squares fit of a sine
// at freq to x, and the power of what is left over, per sample.
func fitSine(x []int16, rate int, freq float64) (amp, residual float64) {
	var ss, sc, cc, xs, xc float64
	for i, v := range x {
		s, c := math.Sincos(2 * math.Pi * freq * float64(i) / float64(rate))
		ss += s * s
		sc += s * c
		cc += c * c
		xs += float64(v) * s
		xc += float64(v) * c
	}
	det := ss*cc - sc*sc
	a := (xs*cc - xc*sc) / det
	b := (xc*ss - xs*sc) / det
	var res float64
	for i, v := range x {
		s, c := math.Sincos(2 * math.Pi * freq * float64(i) / float64(rate))
		e := float64(v) - a*s - b*c
		res += e * e
	}
	return math.Hypot(a, b), res / float64(len(x))
}

// TestResamplerPassband converts a 1 kHz tone at -6 dBFS between every
// pair of device and codec rates: its amplitude must stay within 0.1 dB and
// everything else (filter ripple, aliasing, rounding) at least 50 dB under
// it.
func TestResamplerPassband(t *testing.T) {
	for _, in := range deviceRates {
		for _, out := range deviceRates {
			if in == out {
				continue
			}
			t.Run(fmt.Sprintf("%d_to_%d", in, out), func(t *testing.T) {
				r, err := newResampler(in, out)
				if err != nil {
					t.Fatalf("newResampler(%d, %d): %v", in, out, err)
				}
				got := convertFrames(r, sine(in/2, in, 1000, 16384))
				if want := out / 2; len(got) != want {
					t.Fatalf("converted %d samples into %d, want %d", in/2, len(got), want)
				}
				// Skip the filter's start-up (its delay and then some).
				skip := int(r.delay()) + out/100
				amp, res := fitSine(got[skip:], out, 1000)
				gain := 20 * math.Log10(amp/16384)
				snr := 10 * math.Log10(amp*amp/2/res)
				if math.Abs(gain) > 0.1 || snr < 50 {
					t.Fatalf("1 kHz through %d -> %d Hz: gain %.3f dB, signal to rest %.1f dB; want |gain| <= 0.1, >= 50 dB", in, out, gain, snr)
				}
			})
		}
	}
}

// TestResamplerStopband: going down, a tone above the new Nyquist rate is
// removed, not folded back into the band.
func TestResamplerStopband(t *testing.T) {
	tests := []struct {
		in, out int
		freq    float64 // above out/2
	}{
		{16000, 8000, 5000},
		{16000, 8000, 7000},
		{48000, 16000, 9000},
		{48000, 8000, 12000},
		{32000, 16000, 10000},
	}
	for _, tt := range tests {
		r, err := newResampler(tt.in, tt.out)
		if err != nil {
			t.Fatal(err)
		}
		got := convertFrames(r, sine(tt.in/2, tt.in, tt.freq, 16384))
		var pow float64
		for _, v := range got[len(got)/4:] {
			pow += float64(v) * float64(v)
		}
		rms := math.Sqrt(pow / float64(len(got)-len(got)/4))
		if db := 20 * math.Log10(max(rms, 1e-9)/(16384/math.Sqrt2)); db > -55 {
			t.Fatalf("%v Hz through %d -> %d Hz comes out at %.1f dB, want under -55", tt.freq, tt.in, tt.out, db)
		}
	}
}

// TestResamplerFrames: converting frame by frame gives the same samples
// however the stream is cut, so state is carried between frames.
func TestResamplerFrames(t *testing.T) {
	src := sine(1600, 8000, 440, 8000)
	a, _ := newResampler(8000, 48000)
	b, _ := newResampler(8000, 48000)
	whole := a.convert(nil, src)
	var parts []int16
	for i := 0; i < len(src); i += 160 {
		parts = b.convert(parts, src[i:i+160])
	}
	if !slices.Equal(whole, parts) {
		t.Fatalf("frame-by-frame conversion differs from converting at once")
	}
}

func TestResamplerRefuses(t *testing.T) {
	for _, tt := range []struct{ in, out int }{{0, 8000}, {8000, -1}, {8000, 44100}, {7000, 48000}} {
		if r, err := newResampler(tt.in, tt.out); err == nil {
			t.Fatalf("newResampler(%d, %d) = %v, nil; want an error", tt.in, tt.out, r)
		}
	}
	if r, err := newResampler(16000, 16000); r != nil || err != nil {
		t.Fatalf("newResampler(16000, 16000) = %v, %v; want nil, nil (nothing to do)", r, err)
	}
}
