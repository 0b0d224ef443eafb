package resident

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestReleaserWaitsForQuiet: a period with activity keeps the code
// mapped; the release comes at the end of a quiet one and drops the page
// cache the first time only; another comes only once the process faulted
// pages in again, event or not; a busy owner puts it off; the status
// reports them.
func TestReleaserWaitsForQuiet(t *testing.T) {
	var drops []bool
	faults, busy := int64(1000), false
	r, err := NewReleaser(10*time.Second, func() bool { return busy }, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.release = func(drop bool) (Released, error) {
		drops = append(drops, drop)
		faults += 5 // the release's own faults
		return Released{BeforeKiB: 9000, AfterKiB: 800, Mappings: 2}, nil
	}
	r.faults = func() (int64, error) { return faults, nil }
	look := func(want int, why string) {
		t.Helper()
		r.step()
		if len(drops) != want {
			t.Fatalf("%s: %d releases, want %d", why, len(drops), want)
		}
	}
	if s := r.Status(); s.Count != 0 || !s.Last.IsZero() || s.Quiet != 10*time.Second {
		t.Errorf("status before a release: %+v", s)
	}
	r.Active()
	r.Active() // a second event in the same period changes nothing
	look(0, "activity in the period")
	busy = true
	look(0, "busy")
	busy = false
	look(1, "a quiet period")
	s := r.Status()
	if s.Count != 1 || s.Result.BeforeKiB != 9000 || s.Result.AfterKiB != 800 || s.Last.IsZero() || s.Err != nil {
		t.Errorf("status: %+v", s)
	}
	look(1, "quiet on, nothing new resident")
	faults += releaseFaults / 2
	look(1, "a few faults")
	faults += releaseFaults
	look(2, "a burst of faults with no event (a keepalive ran)")
	faults += 10 * releaseFaults
	r.Active()
	look(2, "faults and an event in the period")
	look(3, "the quiet period after it")
	if drops[0] != true || drops[1] != false || drops[2] != false {
		t.Errorf("page cache dropped at releases %v, want the first only", drops)
	}
	// A failed release is reported and tried again at the next look.
	r.release = func(drop bool) (Released, error) {
		drops = append(drops, drop)
		return Released{}, errors.New("no smaps")
	}
	faults += releaseFaults
	look(4, "failing")
	if s := r.Status(); s.Err == nil || s.Count != 4 {
		t.Errorf("status after a failure: %+v", s)
	}
	look(5, "after a failure")
}

// TestReleaserStops: Run ends with its context.
func TestReleaserStops(t *testing.T) {
	r, err := NewReleaser(time.Millisecond, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.release = func(bool) (Released, error) { return Released{}, nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestNewReleaserRefusesZero(t *testing.T) {
	if _, err := NewReleaser(0, nil, nil); err == nil {
		t.Fatal("a zero quiet time was accepted")
	}
}
