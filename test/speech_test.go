package test

import (
	"math/rand/v2"
	"testing"
)

// TestIntelligibility checks the score against cases whose answer is
// known: the same speech scores 1; speech band-limited to telephone
// bandwidth (8 kHz sampling) stays near fully intelligible; speech with a
// 20 ms hole every 100 ms loses some; noise, or a different sentence,
// scores well below all of those. Delays are found to the sample.
func TestIntelligibility(t *testing.T) {
	const rate = 16000
	speech := Speak(t, "The quick brown fox jumps over the lazy dog near the river bank.", rate, 0.5, 0.5)
	other := Speak(t, "Please call me back tomorrow morning after nine o'clock.", rate, 0.5, 0.5)
	delayed := append(make([]int16, rate/4), speech...) // 250 ms later
	holes := append([]int16(nil), speech...)
	for i := range holes {
		if (i/(rate/50))%5 == 4 { // every fifth 20 ms frame
			holes[i] = 0
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	noise := make([]int16, len(speech))
	for i := range noise {
		noise[i] = int16(rng.NormFloat64() * 2000)
	}
	narrow := Resample(t, speech, rate, 8000)
	tests := []struct {
		name     string
		got      []int16
		rate     int
		min, max float64 // STOI
		lagMS    float64
	}{
		{"identical", speech, rate, 0.999, 1, 0},
		{"delayed 250 ms", delayed, rate, 0.99, 1, 250},
		{"narrowband", narrow, 8000, 0.97, 1, 0},
		{"20 ms holes", holes, rate, 0.6, 0.92, 0},
		{"noise", noise, rate, -1, 0.6, -1},
		{"other sentence", other, rate, -1, 0.6, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := Intelligibility(t, speech, rate, tt.got, tt.rate)
			t.Logf("%s: %v", tt.name, sc)
			if sc.STOI < tt.min || sc.STOI > tt.max {
				t.Fatalf("Intelligibility(%s) = %v, want STOI %.2f..%.2f", tt.name, sc, tt.min, tt.max)
			}
			// The waveform correlation tells the same cases apart.
			if related := tt.min > 0; related && sc.Correlation < 0.85 || !related && sc.Correlation > 0.5 {
				t.Fatalf("Intelligibility(%s) correlation %.3f, want %s", tt.name, sc.Correlation, map[bool]string{true: ">= 0.85", false: "<= 0.5"}[related])
			}
			if tt.lagMS >= 0 && (sc.LagMS < tt.lagMS-0.5 || sc.LagMS > tt.lagMS+0.5) {
				t.Fatalf("Intelligibility(%s) lag %.1f ms, want %.0f", tt.name, sc.LagMS, tt.lagMS)
			}
		})
	}
}
