package adminauth

import (
	"fmt"
	"time"
)

// LockoutPolicy is the exponential backoff applied per account and per
// source: after Free failures, each further failure locks the key for
// Base, then twice as long, and so on up to Max; a key quiet for Forget
// starts over. A success clears the account's count, not the source's (an
// attacker must not reset its source by logging into its own account).
type LockoutPolicy struct {
	Free   int
	Base   time.Duration
	Max    time.Duration
	Forget time.Duration
	// MaxEntries bounds the throttle table (accounts, including names
	// that do not exist, and sources together).
	MaxEntries int
}

// DefaultLockout: 5 free failures, then 1 s, 2 s, 4 s ... up to 15 min;
// forgotten after a day of quiet; 100 000 entries (a few MB).
var DefaultLockout = LockoutPolicy{Free: 5, Base: time.Second, Max: 15 * time.Minute, Forget: 24 * time.Hour, MaxEntries: 100_000}

func (p LockoutPolicy) check() error {
	if p.Free < 0 || p.Base <= 0 || p.Max < p.Base || p.Forget <= 0 || p.MaxEntries < 2 {
		return fmt.Errorf("lockout policy %+v: %w", p, ErrInvalid)
	}
	return nil
}

// delay is the lock after the n-th consecutive failure.
func (p LockoutPolicy) delay(n int) time.Duration {
	if n <= p.Free {
		return 0
	}
	d := p.Base
	for i := p.Free + 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// fail records a failure at now.
func (p LockoutPolicy) fail(t *Throttle, now time.Time) {
	if !t.LastFailure.IsZero() && now.Sub(t.LastFailure) > p.Forget {
		t.Failures = 0
	}
	t.Failures++
	t.LastFailure = now
	if d := p.delay(t.Failures); d > 0 {
		t.LockedUntil = now.Add(d)
	}
}

// wait is how long t still locks at now (zero: free).
func (p LockoutPolicy) wait(t Throttle, now time.Time) time.Duration {
	if now.Before(t.LockedUntil) && now.Sub(t.LastFailure) <= p.Forget {
		return t.LockedUntil.Sub(now)
	}
	return 0
}
