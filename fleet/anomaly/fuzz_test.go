package anomaly

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// FuzzUnmarshalState feeds the state decoder, which reads what the
// server's database holds (an attacker with the database may have written
// it). Oracles: a refused blob changes nothing; an accepted one encodes
// to a blob that restores to the same encoding, and the restored
// detector takes observations.
//
//fuzz:budget 150000
func FuzzUnmarshalState(f *testing.F) {
	// Small seeds: the fuzzer minimises what it finds interesting, and a
	// large state takes it seconds per input.
	h := newHarness(f, func(c *Config) {
		r := c.Rules[RuleCallPremium]
		r.Block = Duration(time.Hour)
		r.Quarantine = Duration(time.Hour)
		c.Rules[RuleCallPremium] = r
	})
	h.obs(Registration{Device: "dev-1", Time: t0, Source: site})
	h.obs(out("dev-1", t0.Add(time.Minute), "+33142685300", 3*time.Minute))
	h.obs(out("dev-1", t0.Add(2*time.Minute), "+88161234", time.Minute))
	h.obs(SecurityEvent{Device: "dev-2", Time: t0.Add(3 * time.Minute), Kind: KindScanner, Peer: netip.MustParseAddr("185.0.0.1")})
	h.obs(SecurityEvent{Device: "dev-2", Time: t0.Add(4 * time.Minute), Kind: KindSIPAuthFailure, Peer: netip.MustParseAddr("2001:db8::1")})
	h.obs(CredentialChange{Device: "dev-1", Time: t0.Add(5 * time.Minute), What: "sip_password"})
	h.obs(Registration{Device: "dev-1", Time: t0.Add(2 * time.Hour), Source: netip.MustParseAddr("100.1.0.1")})
	blob, err := h.d.MarshalState()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob)
	empty, err := New(h.d.Config())
	if err != nil {
		f.Fatal(err)
	}
	e, _ := empty.MarshalState()
	f.Add(e)
	cfg := h.d.Config()
	cfg.MaxDevices, cfg.MaxSources, cfg.MaxNetworks = 4, 4, 4
	f.Fuzz(func(t *testing.T, b []byte) {
		clock := time.Date(2025, 3, 20, 0, 0, 0, 0, time.UTC)
		d, err := New(cfg, WithClock(func() time.Time { return clock }))
		if err != nil {
			t.Fatal(err)
		}
		before, _ := d.MarshalState()
		if err := d.UnmarshalState(b); err != nil {
			if after, _ := d.MarshalState(); !bytes.Equal(before, after) {
				t.Fatalf("UnmarshalState(%q) = %v and changed the state", b, err)
			}
			return
		}
		again, err := d.MarshalState()
		if err != nil {
			t.Fatalf("MarshalState after UnmarshalState(%q) = %v", b, err)
		}
		d2, _ := New(cfg, WithClock(func() time.Time { return clock }))
		if err := d2.UnmarshalState(again); err != nil {
			t.Fatalf("UnmarshalState(MarshalState(UnmarshalState(%q))) = %v", b, err)
		}
		if third, _ := d2.MarshalState(); !bytes.Equal(third, again) {
			t.Fatalf("state of %q does not round-trip:\n%s\n%s", b, again, third)
		}
		for _, o := range []Observation{
			out("dev-1", clock, "+88161234", 30*time.Minute),
			Registration{Device: "dev-2", Time: clock, Source: netip.MustParseAddr("100.1.0.1")},
			SecurityEvent{Device: "dev-3", Time: clock, Kind: KindSIPAuthFailure, Peer: netip.MustParseAddr("45.0.0.1")},
			SecurityEvent{Device: "dev-4", Time: clock, Kind: KindScanner, Peer: netip.MustParseAddr("45.0.0.1")},
			CredentialChange{Device: "dev-1", Time: clock, What: "sip_password"},
		} {
			_, err := d.Observe(o)
			_ = err // stale or accepted: either is fine, a panic is not
		}
		d.Active(clock)
		d.Stats()
	})
}

// FuzzDecodeObservation feeds the observation decoder (a PBX feed, a
// queue). Oracle: what decodes encodes to a form that decodes to the same
// encoding.
//
//fuzz:budget 400000
func FuzzDecodeObservation(f *testing.F) {
	for _, o := range []Observation{
		out("dev-1", t0, "+4930123456", 90*time.Second),
		Registration{Device: "dev-2", Time: t0, Source: netip.MustParseAddr("2001:db8::1")},
		SecurityEvent{Device: "dev-3", Time: t0, Kind: KindScanner, Peer: netip.MustParseAddr("192.0.2.1"), Count: 4},
		CredentialChange{Device: "dev-4", Time: t0, What: "sip_password", Actor: "admin"},
	} {
		b, err := EncodeObservation(o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeObservation(b)
		if err != nil {
			return
		}
		enc, err := EncodeObservation(o)
		if err != nil {
			t.Fatalf("EncodeObservation(DecodeObservation(%q)) = %v", b, err)
		}
		o2, err := DecodeObservation(enc)
		if err != nil {
			t.Fatalf("DecodeObservation(%s) = %v", enc, err)
		}
		if enc2, _ := EncodeObservation(o2); !bytes.Equal(enc, enc2) {
			t.Fatalf("observation %q does not round-trip: %s, %s", b, enc, enc2)
		}
	})
}
