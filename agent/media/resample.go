package media

// Sample-rate conversion between a sound device and the codec: a device
// opened at 16 kHz carries a G.711 call through 16 -> 8 kHz on the way out
// and 8 -> 16 kHz on the way in, a 48 kHz device feeds G.722 through
// 48 -> 16 kHz, and so on. Every rate a device opens at (8, 16, 32 and
// 48 kHz) and every codec rate (8 and 16 kHz) is a multiple of 8 kHz, so
// each conversion is a small rational factor L/M (at most 6/1) done by one
// polyphase FIR filter: upsample by L, low-pass, keep every M-th sample.
//
//	x[n] --(insert L-1 zeros)--> h[k] (cutoff below both Nyquist rates) --(keep 1 in M)--> y[m]
//
// y[m] = sum_j h[p + jL] * x[floor(mM/L) - j], p = mM mod L: only the taps
// that meet a real input sample are computed.
//
// The filter is a Kaiser-windowed sinc designed for 60 dB of stop-band
// attenuation, flat (within 0.1 dB) to 80 % of the lower Nyquist rate and
// down by 60 dB at that Nyquist rate, which keeps G.711's 300-3400 Hz and
// G.722's 50-7000 Hz intact. Its delay is half its length: 2.25 ms for
// 8 <-> 16 kHz, about 1 ms for 48 -> 16 kHz.

import (
	"fmt"
	"math"
)

const (
	// resampleAtten is the stop-band attenuation the filter is designed
	// for, in dB.
	resampleAtten = 60.0
	// resamplePass is the pass-band edge as a fraction of the lower
	// Nyquist rate; the stop band starts at that Nyquist rate.
	resamplePass = 0.8
	// maxResampleFactor bounds L and M: 48 kHz <-> 8 kHz is 6.
	maxResampleFactor = 6
)

// resampler converts 20 ms frames from one rate to another, keeping the
// filter's history between frames. It is used by one goroutine.
type resampler struct {
	in, out int // rates in Hz
	l, m    int // out/in = l/m, in lowest terms
	// taps is the number of filter taps per phase; h holds phase p's taps
	// at h[p*taps : (p+1)*taps], already scaled by l.
	taps int
	h    []float64
	// hist holds the last taps-1 input samples, oldest first, then room
	// for the frame being converted.
	hist []float64
}

// newResampler returns a converter from in Hz to out Hz, or nil when the
// rates are equal.
func newResampler(in, out int) (*resampler, error) {
	if in <= 0 || out <= 0 {
		return nil, fmt.Errorf("resample %d Hz to %d Hz: rates must be positive", in, out)
	}
	if in == out {
		return nil, nil
	}
	g := gcd(in, out)
	l, m := out/g, in/g
	if l > maxResampleFactor || m > maxResampleFactor {
		return nil, fmt.Errorf("resample %d Hz to %d Hz: factor %d/%d beyond %d", in, out, l, m, maxResampleFactor)
	}
	// Design at the upsampled rate l*in, normalised so that 1.0 is that
	// rate's Nyquist frequency.
	nyq := 1.0 / float64(max(l, m))
	transition := nyq * (1 - resamplePass)
	cutoff := nyq * (1 + resamplePass) / 2
	// Kaiser's estimates (Oppenheim & Schafer §7.6): length and beta for
	// the attenuation and transition width.
	n := int(math.Ceil((resampleAtten-7.95)/(2.285*math.Pi*transition))) + 1
	beta := 0.1102 * (resampleAtten - 8.7)
	taps := (n + l - 1) / l
	n = taps * l
	proto := make([]float64, n)
	center := float64(n-1) / 2
	i0b := besselI0(beta)
	for k := range proto {
		x := float64(k) - center
		sinc := cutoff
		if x != 0 {
			sinc = math.Sin(math.Pi*cutoff*x) / (math.Pi * x)
		}
		r := 2*float64(k)/float64(n-1) - 1
		w := besselI0(beta*math.Sqrt(max(0, 1-r*r))) / i0b
		proto[k] = float64(l) * sinc * w
	}
	// Rearrange by phase: phase p takes proto[p], proto[p+l], ...
	h := make([]float64, n)
	for p := 0; p < l; p++ {
		for j := 0; j < taps; j++ {
			h[p*taps+j] = proto[p+j*l]
		}
	}
	return &resampler{in: in, out: out, l: l, m: m, taps: taps, h: h, hist: make([]float64, taps-1)}, nil
}

// delay is the filter's group delay in output samples.
func (r *resampler) delay() float64 {
	return float64(r.taps*r.l-1) / 2 / float64(r.m)
}

// convert appends the conversion of src to dst. len(src) must be a
// multiple of r.m (every 20 ms frame is); a remainder is dropped.
func (r *resampler) convert(dst, src []int16) []int16 {
	src = src[:len(src)-len(src)%r.m]
	keep := r.taps - 1
	buf := r.hist[:keep]
	for _, s := range src {
		buf = append(buf, float64(s))
	}
	r.hist = buf
	outN := len(src) * r.l / r.m
	for o := 0; o < outN; o++ {
		u := o * r.m
		p := u % r.l
		// base is the newest input sample under tap 0 of phase p.
		base := keep + u/r.l
		taps := r.h[p*r.taps : (p+1)*r.taps]
		var acc float64
		for j, c := range taps {
			acc += c * buf[base-j]
		}
		dst = append(dst, clamp16(acc))
	}
	copy(r.hist[:keep], buf[len(buf)-keep:])
	r.hist = r.hist[:keep]
	return dst
}

func clamp16(v float64) int16 {
	switch {
	case v >= math.MaxInt16:
		return math.MaxInt16
	case v <= math.MinInt16:
		return math.MinInt16
	}
	return int16(math.Round(v))
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// besselI0 is the zeroth-order modified Bessel function of the first kind
// by its power series, which converges fast for the betas used here.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < 1e-12*sum {
			break
		}
	}
	return sum
}
