package sip

import (
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	base, max := 30*time.Second, 1800*time.Second
	tests := []struct {
		failures int
		rnd      float64
		want     time.Duration
	}{
		{0, 1, 30 * time.Second},
		{0, 0, 15 * time.Second},
		{1, 1, 60 * time.Second},
		{5, 1, 960 * time.Second},
		{6, 1, 1800 * time.Second},
		{100, 0, 900 * time.Second},
	}
	for _, tt := range tests {
		got := retryDelay(base, max, tt.failures, func() float64 { return tt.rnd })
		if got != tt.want {
			t.Errorf("retryDelay(failures=%d, rnd=%v) = %v, want %v", tt.failures, tt.rnd, got, tt.want)
		}
	}
}

func TestRefreshDelayUsesGrant(t *testing.T) {
	tests := []struct{ granted, want time.Duration }{
		{3600 * time.Second, 3540 * time.Second},
		{600 * time.Second, 540 * time.Second},
		{60 * time.Second, 54 * time.Second},
		{20 * time.Second, 15 * time.Second},
		{4 * time.Second, 2 * time.Second},
		{1 * time.Second, 1 * time.Second},
	}
	for _, tt := range tests {
		if got := refreshDelay(tt.granted); got != tt.want {
			t.Errorf("refreshDelay(%v) = %v, want %v", tt.granted, got, tt.want)
		}
	}
}
