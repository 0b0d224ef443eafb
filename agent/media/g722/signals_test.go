package g722

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
)

// testSignal is a named 16 kHz test input.
type testSignal struct {
	name string
	pcm  []int16
}

// signalSamples is one second: 50 frames of 20 ms.
const signalSamples = SampleRate

// testSignals are the inputs the interop and quality tests run: tones in
// each band, a chirp across the whole band, noise, silence, and full-scale
// and clipped signals that drive the quantizers and predictors to their
// limits.
func testSignals() []testSignal {
	rng := rand.New(rand.NewPCG(0x6722, 1))
	gen := func(f func(i int) float64) []int16 {
		pcm := make([]int16, signalSamples)
		for i := range pcm {
			pcm[i] = clip16(f(i))
		}
		return pcm
	}
	sine := func(hz, amp float64) func(int) float64 {
		return func(i int) float64 { return amp * math.Sin(2*math.Pi*hz*float64(i)/SampleRate) }
	}
	return []testSignal{
		{"silence", make([]int16, signalSamples)},
		{"tone_1k_-6dBFS", gen(sine(1000, 16384))},
		{"tone_300_3400", gen(func(i int) float64 { return sine(300, 9000)(i) + sine(3400, 9000)(i) })},
		{"tone_6k_upper_band", gen(sine(6000, 16384))},
		{"tone_1k_-50dBFS", gen(sine(1000, 100))},
		{"chirp_50_7950", gen(func(i int) float64 {
			// Linear sweep: the phase is the integral of the frequency.
			t := float64(i) / SampleRate
			f0, f1, dur := 50.0, 7950.0, float64(signalSamples)/SampleRate
			return 20000 * math.Sin(2*math.Pi*(f0*t+(f1-f0)*t*t/(2*dur)))
		})},
		{"white_noise_full_scale", gen(func(int) float64 { return float64(int16(rng.Uint32())) })},
		{"white_noise_quiet", gen(func(int) float64 { return rng.NormFloat64() * 300 })},
		{"square_500_full_scale", gen(func(i int) float64 {
			if (i/16)%2 == 0 {
				return math.MaxInt16
			}
			return math.MinInt16
		})},
		{"sine_1k_clipped_4x", gen(sine(1000, 4*32768))},
		{"nyquist_alternating", gen(func(i int) float64 {
			if i%2 == 0 {
				return math.MaxInt16
			}
			return math.MinInt16
		})},
		{"impulses", gen(func(i int) float64 {
			if i%160 == 0 {
				return math.MaxInt16
			}
			return 0
		})},
	}
}

func clip16(v float64) int16 {
	return int16(max(math.MinInt16, min(math.MaxInt16, math.Round(v))))
}

// s16le is the raw PCM form ffmpeg reads and writes with -f s16le.
func s16le(pcm []int16) []byte {
	b := make([]byte, 0, 2*len(pcm))
	for _, s := range pcm {
		b = binary.LittleEndian.AppendUint16(b, uint16(s))
	}
	return b
}

func fromS16le(b []byte) []int16 {
	pcm := make([]int16, len(b)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return pcm
}

// snr returns the signal-to-noise ratio in dB of got against want, with got
// delayed by lag samples, over want[from:].
func snr(want, got []int16, lag, from int) float64 {
	var sig, noise float64
	for i := from; i+lag < len(got) && i < len(want); i++ {
		w, g := float64(want[i]), float64(got[i+lag])
		sig += w * w
		noise += (w - g) * (w - g)
	}
	return 10 * math.Log10(sig/noise)
}

// bestLag returns the delay in [0, maxLag] at which got correlates best
// with want.
func bestLag(want, got []int16, maxLag int) int {
	best, bestC := 0, math.Inf(-1)
	for lag := 0; lag <= maxLag; lag++ {
		var c float64
		for i := 0; i+lag < len(got) && i < len(want); i++ {
			c += float64(want[i]) * float64(got[i+lag])
		}
		if c > bestC {
			best, bestC = lag, c
		}
	}
	return best
}
