package sip

import (
	"math/rand/v2"
	"time"
)

// retryDelay is RFC 5626 §4.5's flow-recovery wait:
//
//	W = min(max-time, base-time * 2^consecutive-failures)
//
// and the UA waits a random time between 50% and 100% of W, so a fleet of
// phones that lost the same registrar does not come back in lockstep.
func retryDelay(base, max time.Duration, failures int, rnd func() float64) time.Duration {
	w := max
	if failures < 30 {
		if d := base << failures; d > 0 && d < max {
			w = d
		}
	}
	return time.Duration(float64(w) * (0.5 + 0.5*rnd()))
}

func jitter() float64 { return rand.Float64() }

// refreshDelay is when to refresh a registration the registrar granted for
// granted: before expiry with a margin of a tenth, at least 5 s and at most
// 60 s, so a slow round trip cannot let the binding lapse.
func refreshDelay(granted time.Duration) time.Duration {
	margin := granted / 10
	if margin < 5*time.Second {
		margin = 5 * time.Second
	}
	if margin > 60*time.Second {
		margin = 60 * time.Second
	}
	d := granted - margin
	if d < granted/2 {
		d = granted / 2
	}
	if d < time.Second {
		d = time.Second
	}
	return d
}
