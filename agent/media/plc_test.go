package media

import (
	"math"
	"testing"
)

// vowel is a voiced-speech stand-in: a 125 Hz fundamental and four
// harmonics, falling in level, at rate Hz.
func vowel(n, rate int) []int16 {
	out := make([]int16, n)
	for i := range out {
		var v float64
		for h := 1; h <= 5; h++ {
			v += 6000 / float64(h) * math.Sin(2*math.Pi*125*float64(h)*float64(i)/float64(rate)+float64(h))
		}
		out[i] = int16(v)
	}
	return out
}

func rms(x []int16) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(max(len(x), 1)))
}

// snr is the ratio, in dB, of ref's power to the power of got-ref.
func snr(ref, got []int16) float64 {
	var p, e float64
	for i := range ref {
		p += float64(ref[i]) * float64(ref[i])
		d := float64(got[i]) - float64(ref[i])
		e += d * d
	}
	return 10 * math.Log10(p/max(e, 1e-9))
}

// TestPLCReplicatesPitch: for a periodic signal, a 10 ms gap is filled with
// the signal's own continuation (the method's whole premise), at both the
// G.711 and the G.722 rate.
func TestPLCReplicatesPitch(t *testing.T) {
	for _, rate := range []int{8000, 16000} {
		sig := vowel(rate/2, rate) // 0.5 s
		p := newPLC(rate)
		frame := rate * frameMillis / 1000
		cut := 10 * frame // 200 ms of history
		hist := append([]int16(nil), sig[:cut]...)
		p.good(hist)
		gap := p.conceal(nil, rate/100) // 10 ms
		if s := snr(sig[cut:cut+len(gap)], gap); s < 15 {
			t.Fatalf("%d Hz: 10 ms concealment of a 125 Hz vowel: %.1f dB from the lost signal, want at least 15", rate, s)
		}
	}
}

// TestPLCFades: concealment fades out (20 % per 10 ms after the first
// 10 ms) and is silent from 60 ms on, so a long outage does not buzz.
func TestPLCFades(t *testing.T) {
	const rate = 8000
	p := newPLC(rate)
	p.good(vowel(1600, rate))
	var prev float64 = math.Inf(1)
	for step := 0; step < 8; step++ { // 8 x 10 ms
		out := p.conceal(nil, rate/100)
		r := rms(out)
		switch {
		case step >= 6 && r != 0:
			t.Fatalf("concealment %d-%d ms: rms %.1f, want silence", 10*step, 10*step+10, r)
		case step >= 1 && step < 6 && r >= prev:
			t.Fatalf("concealment %d-%d ms: rms %.1f not below the previous 10 ms (%.1f)", 10*step, 10*step+10, r, prev)
		}
		prev = r
	}
}

// TestPLCRecoveryJoin: when audio comes back after a gap the join has no
// step larger than the signal's own largest sample-to-sample change.
func TestPLCRecoveryJoin(t *testing.T) {
	const rate = 16000
	sig := vowel(rate, rate)
	var maxStep float64
	for i := 1; i < len(sig); i++ {
		maxStep = max(maxStep, math.Abs(float64(sig[i])-float64(sig[i-1])))
	}
	p := newPLC(rate)
	frame := rate * frameMillis / 1000
	out := append([]int16(nil), sig[:10*frame]...)
	p.good(out)
	out = p.conceal(out, 2*frame) // 40 ms lost
	back := append([]int16(nil), sig[12*frame:13*frame]...)
	p.good(back)
	join := len(out)
	out = append(out, back...)
	for i := join - 4; i < join+4; i++ {
		if step := math.Abs(float64(out[i]) - float64(out[i-1])); step > 1.5*maxStep {
			t.Fatalf("step of %.0f at sample %d (join at %d), want at most 1.5 x the signal's largest (%.0f)", step, i, join, maxStep)
		}
	}
	if p.concealing() {
		t.Fatalf("still concealing after good audio")
	}
}

// TestPLCSilentHistory: with nothing heard yet, concealment is silence.
func TestPLCSilentHistory(t *testing.T) {
	p := newPLC(8000)
	if out := p.conceal(nil, 160); rms(out) != 0 {
		t.Fatalf("conceal with no history: rms %.1f, want 0", rms(out))
	}
}

// TestLevelMeter checks dBFS against signals of known level.
func TestLevelMeter(t *testing.T) {
	square := make([]int16, 160)
	for i := range square {
		square[i] = 32767
		if i%2 == 1 {
			square[i] = -32768
		}
	}
	tests := []struct {
		name              string
		frame             []int16
		wantRMS, wantPeak float64
	}{
		{"silence", make([]int16, 160), MinDBFS, MinDBFS},
		{"full-scale square", square, 0, 0},
		{"-6 dBFS sine", sine(160, 8000, 1000, 16384), -9.03, -6.02},
		{"one LSB", append(make([]int16, 159), 1), -112, -90.3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newLevelMeter()
			for range levelWindow + 3 {
				m.add(tt.frame)
			}
			got := m.level()
			want := Level{RMSdBFS: max(tt.wantRMS, MinDBFS), PeakdBFS: tt.wantPeak}
			if math.Abs(got.RMSdBFS-want.RMSdBFS) > 0.05 || math.Abs(got.PeakdBFS-want.PeakdBFS) > 0.05 {
				t.Fatalf("level() = %+v, want %+v", got, want)
			}
		})
	}
	// The window is a second: a loud second followed by a silent one reads
	// as silence.
	m := newLevelMeter()
	for range levelWindow {
		m.add(square)
	}
	for range levelWindow {
		m.add(make([]int16, 160))
	}
	if got := m.level(); got.RMSdBFS != MinDBFS || got.PeakdBFS != MinDBFS {
		t.Fatalf("level() after a silent second = %+v, want the floor", got)
	}
}
