package anomaly_test

import (
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/anomaly"
	"github.com/hardphone/hardphone/fleet/anomaly/sim"
)

// BenchmarkDetector times the detector over three weeks of a generated
// fleet of 100 phones (about 120,000 observations, attacks included) as a
// server would take them: each one decoded from its JSON form and
// observed (/ours). The reference in the same run decodes the same lines
// and merely counts them per device into a map (/reference: the least a
// server does with an observation); /observe_only is the detector alone
// on decoded observations. Each reports events/s.
func BenchmarkDetector(b *testing.B) {
	cfg := sim.DefaultConfig()
	cfg.Devices, cfg.Days = 100, 21
	s, err := sim.Generate(cfg)
	if err != nil {
		b.Fatalf("Generate = %v", err)
	}
	lines := make([][]byte, len(s.Observations))
	var size int64
	for i, o := range s.Observations {
		if lines[i], err = anomaly.EncodeObservation(o); err != nil {
			b.Fatalf("EncodeObservation = %v", err)
		}
		size += int64(len(lines[i]))
	}
	dcfg := sim.EvalConfig(s)
	events := func(b *testing.B, start time.Time) {
		b.ReportMetric(float64(len(lines))*float64(b.N)/time.Since(start).Seconds(), "events/s")
	}
	b.Run("ours", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			var now time.Time
			d, err := anomaly.New(dcfg, anomaly.WithClock(func() time.Time { return now }))
			if err != nil {
				b.Fatalf("New = %v", err)
			}
			for _, l := range lines {
				o, err := anomaly.DecodeObservation(l)
				if err != nil {
					b.Fatalf("DecodeObservation = %v", err)
				}
				now = o.At()
				if _, err := d.Observe(o); err != nil {
					b.Fatalf("Observe = %v", err)
				}
			}
		}
		events(b, start)
	})
	b.Run("reference", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			counts := map[string]int{}
			for _, l := range lines {
				o, err := anomaly.DecodeObservation(l)
				if err != nil {
					b.Fatalf("DecodeObservation = %v", err)
				}
				counts[o.DeviceID()]++
			}
			if len(counts) != cfg.Devices {
				b.Fatalf("%d devices counted, want %d", len(counts), cfg.Devices)
			}
		}
		events(b, start)
	})
	b.Run("observe_only", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			var now time.Time
			d, err := anomaly.New(dcfg, anomaly.WithClock(func() time.Time { return now }))
			if err != nil {
				b.Fatalf("New = %v", err)
			}
			for _, o := range s.Observations {
				now = o.At()
				if _, err := d.Observe(o); err != nil {
					b.Fatalf("Observe = %v", err)
				}
			}
		}
		events(b, start)
	})
}

// BenchmarkState times saving and restoring the state of 300 phones
// after a month, beside the reference of plain JSON round-tripping the
// same bytes into a generic value.
func BenchmarkState(b *testing.B) {
	s, err := sim.Generate(sim.DefaultConfig())
	if err != nil {
		b.Fatalf("Generate = %v", err)
	}
	var now time.Time
	d, err := anomaly.New(sim.EvalConfig(s), anomaly.WithClock(func() time.Time { return now }))
	if err != nil {
		b.Fatalf("New = %v", err)
	}
	for _, o := range s.Observations {
		now = o.At()
		if _, err := d.Observe(o); err != nil {
			b.Fatalf("Observe = %v", err)
		}
	}
	blob, err := d.MarshalState()
	if err != nil {
		b.Fatalf("MarshalState = %v", err)
	}
	b.Logf("state of %d devices: %d bytes", d.Stats().Devices, len(blob))
	b.Run("marshal", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for b.Loop() {
			if _, err := d.MarshalState(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		d2, _ := anomaly.New(sim.EvalConfig(s))
		for b.Loop() {
			if err := d2.UnmarshalState(blob); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference_json", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for b.Loop() {
			var v any
			if err := jsonUnmarshal(blob, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
