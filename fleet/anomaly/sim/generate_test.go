package sim

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/anomaly"
)

func digest(t *testing.T, s Stream) [32]byte {
	t.Helper()
	h := sha256.New()
	for _, o := range s.Observations {
		b, err := anomaly.EncodeObservation(o)
		if err != nil {
			t.Fatalf("EncodeObservation(%+v) = %v", o, err)
		}
		h.Write(b)
	}
	fmt.Fprint(h, s.Attacks)
	return [32]byte(h.Sum(nil))
}

func TestGenerateDeterministic(t *testing.T) {
	c := DefaultConfig()
	c.Devices, c.Days = 60, 21
	a, err := Generate(c)
	if err != nil {
		t.Fatalf("Generate = %v", err)
	}
	b, _ := Generate(c)
	if digest(t, a) != digest(t, b) {
		t.Fatalf("Generate(%+v) gave two different streams", c)
	}
	c.Seed = 2
	other, _ := Generate(c)
	if digest(t, a) == digest(t, other) {
		t.Fatalf("seeds 1 and 2 gave the same stream")
	}
}

func TestGenerateRefuses(t *testing.T) {
	for _, mutate := range []func(*Config){
		func(c *Config) { c.Devices = 10 },
		func(c *Config) { c.Days = 7 },
		func(c *Config) { c.Start = c.Start.Add(24 * time.Hour) }, // a Tuesday
		func(c *Config) { c.Start = c.Start.Add(time.Hour) },
	} {
		c := DefaultConfig()
		mutate(&c)
		if _, err := Generate(c); err == nil {
			t.Errorf("Generate(%+v) = nil error", c)
		}
	}
}

// TestStreamShape: the stream is in time order and within its month,
// every observation is valid, and every attack type is there with its
// victims.
func TestStreamShape(t *testing.T) {
	s, err := Generate(DefaultConfig())
	if err != nil {
		t.Fatalf("Generate = %v", err)
	}
	end := s.Config.Start.Add(time.Duration(s.Config.Days) * 24 * time.Hour)
	kinds := map[string]int{}
	for i, o := range s.Observations {
		if i > 0 && o.At().Before(s.Observations[i-1].At()) {
			t.Fatalf("observation %d (%v) before the one ahead of it (%v)", i, o.At(), s.Observations[i-1].At())
		}
		if o.At().Before(s.Config.Start) || !o.At().Before(end) {
			t.Fatalf("observation %d at %v outside the month", i, o.At())
		}
		kinds[fmt.Sprintf("%T", o)]++
	}
	if len(kinds) != 4 || len(s.DeviceIDs) != 300 || len(s.Profiles) != 300 {
		t.Fatalf("observation types %v, %d devices", kinds, len(s.DeviceIDs))
	}
	types := map[string]int{}
	for _, a := range s.Attacks {
		types[a.Type]++
		if len(a.Devices) == 0 || !a.Start.Before(a.End) || a.Start.Before(s.Config.Start.Add(7*24*time.Hour)) {
			t.Errorf("attack %+v: no victim, empty span, or inside the warm-up", a)
		}
	}
	for _, typ := range AttackTypes {
		if types[typ] == 0 {
			t.Errorf("no %s attack", typ)
		}
	}
	profiles := map[string]int{}
	for _, p := range s.Profiles {
		profiles[p]++
	}
	for _, p := range profileNames {
		if profiles[p] == 0 {
			t.Errorf("no %s phone", p)
		}
	}
	t.Logf("%d observations %v; profiles %v; attacks %v", len(s.Observations), kinds, profiles, types)
}

// TestRestoreMidway: a detector saved halfway and restored makes the
// findings one that ran through makes.
func TestRestoreMidway(t *testing.T) {
	c := DefaultConfig()
	c.Devices, c.Days = 80, 21
	s, err := Generate(c)
	if err != nil {
		t.Fatalf("Generate = %v", err)
	}
	cfg := EvalConfig(s)
	run := func(d *anomaly.Detector, now *time.Time, os []anomaly.Observation) []string {
		var out []string
		for _, o := range os {
			*now = o.At()
			fs, err := d.Observe(o)
			if err != nil {
				t.Fatalf("Observe(%+v) = %v", o, err)
			}
			for _, f := range fs {
				out = append(out, fmt.Sprint(f))
			}
		}
		return out
	}
	var nowA, nowB time.Time
	a, _ := anomaly.New(cfg, anomaly.WithClock(func() time.Time { return nowA }))
	b, _ := anomaly.New(cfg, anomaly.WithClock(func() time.Time { return nowB }))
	whole := run(a, &nowA, s.Observations)
	half := len(s.Observations) / 2
	got := run(b, &nowB, s.Observations[:half])
	blob, err := b.MarshalState()
	if err != nil {
		t.Fatalf("MarshalState = %v", err)
	}
	c2, _ := anomaly.New(cfg, anomaly.WithClock(func() time.Time { return nowB }))
	if err := c2.UnmarshalState(blob); err != nil {
		t.Fatalf("UnmarshalState = %v", err)
	}
	got = append(got, run(c2, &nowB, s.Observations[half:])...)
	if len(whole) == 0 || !slices.Equal(got, whole) {
		t.Fatalf("restored halfway: %d findings, through: %d; they differ", len(got), len(whole))
	}
}
