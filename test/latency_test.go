package test

import (
	"path/filepath"
	"testing"
	"time"
)

// TestOnsets finds every impulse of a train, at the time its samples say,
// whether handed over frame by frame (a Source or Sink) or followed in a
// WAV file as it is written.
func TestOnsets(t *testing.T) {
	const rate = 16000
	train := ImpulseTrain(rate, time.Second, 500*time.Millisecond, 4)
	o := NewOnsets(rate, false)
	t0 := time.Unix(1000, 0)
	for i := 0; i+320 <= len(train); i += 320 {
		o.Frame(train[i:i+320], t0.Add(time.Duration(i)*time.Second/rate))
	}
	if o.Count() != 4 {
		t.Fatalf("found %d onsets in a train of 4", o.Count())
	}
	for k := range 4 {
		want := t0.Add(time.Second + time.Duration(k)*500*time.Millisecond)
		if got := o.Wait(t, k, time.Second); got.Sub(want).Abs() > time.Millisecond {
			t.Fatalf("onset %d at %v, want %v", k, got.Sub(t0), want.Sub(t0))
		}
	}

	path := filepath.Join(t.TempDir(), "train.wav")
	WriteWAV(t, path, train, rate)
	tail := NewOnsets(rate, false)
	TailWAV(t, path, tail)
	tail.Wait(t, 3, 5*time.Second)
}
