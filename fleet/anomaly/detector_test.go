package anomaly

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func TestResponses(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		r := c.Rules[RuleCallPremium]
		r.Block = Duration(2 * time.Hour)
		r.Quarantine = Duration(24 * time.Hour)
		c.Rules[RuleCallPremium] = r
		c.EmergencyNumbers = []string{"112", "110"}
	})
	when := at(1, 2, 3, 0)
	fs := h.obs(out("dev-1", when, "+4990012345", 0))
	if len(fs) != 1 {
		t.Fatalf("findings %v, want call.premium", ruleNames(fs))
	}
	var kinds []ResponseKind
	for _, r := range fs[0].Responses {
		kinds = append(kinds, r.Kind)
	}
	if !slices.Equal(kinds, []ResponseKind{ResponseAlert, ResponseBlock, ResponseQuarantine}) {
		t.Fatalf("responses %v, want alert, block, quarantine", kinds)
	}
	b := fs[0].Responses[1]
	if b.Device != "dev-1" || !b.Until.Equal(when.Add(2*time.Hour)) || b.Override == nil ||
		!slices.Equal(b.Override.Allow, []string{"112", "110"}) || b.Override.International || b.Finding != fs[0].ID || b.Rule != RuleCallPremium {
		t.Fatalf("block = %+v (override %+v)", b, b.Override)
	}
	if r, ok := h.d.Blocked("dev-1", when.Add(time.Hour)); !ok || !r.Until.Equal(b.Until) {
		t.Fatalf("Blocked(+1h) = %+v, %v, want the block", r, ok)
	}
	if _, ok := h.d.Blocked("dev-1", when.Add(3*time.Hour)); ok {
		t.Fatalf("Blocked(+3h): the block ended at +2h")
	}
	if !h.d.Quarantined("dev-1", when.Add(23*time.Hour)) || h.d.Quarantined("dev-1", when.Add(25*time.Hour)) || h.d.Quarantined("dev-2", when) {
		t.Fatalf("Quarantined: want dev-1 for 24 hours only")
	}
	if got := h.d.Active(when.Add(time.Hour)); len(got) != 2 || got[0].Kind != ResponseBlock || got[1].Kind != ResponseQuarantine {
		t.Fatalf("Active(+1h) = %+v, want the block and the quarantine", got)
	}
	// A caller changing what it got changes nothing inside.
	b.Override.Allow[0] = "999"
	if r, _ := h.d.Blocked("dev-1", when); r.Override.Allow[0] != "112" {
		t.Fatalf("the detector's override changed with a caller's copy")
	}
	if !h.d.Lift("dev-1", ResponseQuarantine) || h.d.Quarantined("dev-1", when) || h.d.Lift("dev-1", ResponseQuarantine) {
		t.Fatalf("Lift(quarantine): want lifted once")
	}
	// Ended responses go at the next hour.
	h.quiet(Registration{Device: "dev-2", Time: when.Add(3 * time.Hour), Source: site})
	if s := h.d.Stats(); s.Responses != 0 {
		t.Fatalf("Stats().Responses = %d after the block ended, want 0", s.Responses)
	}
}

// TestRefusalsChangeNothing: an invalid, future or stale observation is
// refused and the state is byte for byte what it was.
func TestRefusalsChangeNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.officeWeeks("dev-1", 1)
	before, err := h.d.MarshalState()
	if err != nil {
		t.Fatalf("MarshalState = %v", err)
	}
	for _, tt := range []struct {
		name string
		o    Observation
		want error
	}{
		{"invalid", Call{Device: "dev-1", Time: h.now}, ErrInvalid},
		{"nil", nil, ErrInvalid},
		{"nil pointer", (*Call)(nil), ErrInvalid},
		{"future", Registration{Device: "dev-1", Time: h.now.Add(11 * time.Minute), Source: site}, ErrFuture},
		{"stale", Registration{Device: "dev-1", Time: h.now.Add(-7 * time.Hour), Source: site}, ErrStale},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := h.d.Observe(tt.o); !errors.Is(err, tt.want) {
				t.Fatalf("Observe = %v, want %v", err, tt.want)
			}
			after, _ := h.d.MarshalState()
			if !bytes.Equal(before, after) {
				t.Fatalf("a refused observation changed the state")
			}
		})
	}
	// Pointers are accepted like values; a late one within the lateness
	// counts.
	if _, err := h.d.Observe(&Registration{Device: "dev-1", Time: h.now.Add(-5 * time.Hour), Source: site}); err != nil {
		t.Fatalf("Observe(late pointer) = %v", err)
	}
}

// TestMemoryBounds: whatever is fed, the tracked devices, sources,
// networks and per-device lists stay within their caps.
func TestMemoryBounds(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.MaxDevices, c.MaxSources, c.MaxNetworks = 10, 4, 8
	})
	tm := t0
	for i := range 50 {
		tm = tm.Add(time.Second)
		h.obs(SecurityEvent{Device: fmt.Sprintf("dev-%d", i), Time: tm, Kind: KindScanner, Peer: netip.AddrFrom4([4]byte{185, byte(i), 0, 1})})
		h.obs(Registration{Device: fmt.Sprintf("dev-%d", i), Time: tm, Source: netip.AddrFrom4([4]byte{100, byte(i), 0, 1})})
	}
	for i := range 300 {
		tm = tm.Add(time.Second)
		h.obs(out("dev-49", tm, fmt.Sprintf("+%d%08d", 20+i%80, i), time.Second))
		h.obs(Registration{Device: "dev-49", Time: tm, Source: netip.AddrFrom4([4]byte{101, byte(i), 0, 1})})
		h.obs(SecurityEvent{Device: fmt.Sprintf("dev-x%d", i), Time: tm, Kind: KindSIPAuthFailure, Peer: netip.AddrFrom4([4]byte{45, 0, 0, 1})})
	}
	s := h.d.Stats()
	if s.Devices != 10 || s.Sources != 4 || s.Networks != 8 {
		t.Fatalf("Stats() = %+v, want 10 devices, 4 sources, 8 networks", s)
	}
	if _, ok := h.d.st.devices.peek("dev-0"); ok {
		t.Fatalf("dev-0, the least recently seen, is still tracked")
	}
	if _, ok := h.d.st.devices.peek("dev-x299"); !ok {
		t.Fatalf("the most recent device is not tracked")
	}
	h2 := newHarness(t, func(c *Config) { c.LearnHold = 0 })
	for i := range 300 {
		tm := t0.Add(time.Duration(i) * time.Second)
		h2.obs(out("dev-1", tm, fmt.Sprintf("+%d%08d", 20+i%80, i), time.Second))
		h2.obs(Registration{Device: "dev-1", Time: tm, Source: netip.AddrFrom4([4]byte{101, byte(i), 0, 1})})
	}
	d1, _ := h2.d.st.devices.peek("dev-1")
	if len(d1.dests) != maxDests || len(d1.countries) != maxCountries || len(d1.nets) != maxNets || d1.callN != recentCalls || d1.durN != durSamples {
		t.Fatalf("device lists: %d numbers, %d countries, %d networks, %d calls, %d lengths: want the caps",
			len(d1.dests), len(d1.countries), len(d1.nets), d1.callN, d1.durN)
	}
	if s := h2.d.st.sources.len() + h2.d.st.authWin.count(); s != 0 {
		t.Fatalf("calls and registrations created sources or windows")
	}
}

// TestLearningHold: what a device does while a holding rule's finding is
// fresh does not become its normal.
func TestLearningHold(t *testing.T) {
	h := newHarness(t, nil)
	h.officeWeeks("dev-1", 2)
	// Night one: toll fraud to +225 fires (and holds learning for 3
	// days); nights two and three go on.
	for night := range 3 {
		for i := range 10 {
			h.obs(out("dev-1", at(2, 1+night, 2, i*4), "+22512345678", 20*time.Minute))
		}
	}
	dev, _ := h.d.st.devices.peek("dev-1")
	c := dev.country("+225")
	if c == nil || c.days != 1 || c.est {
		t.Fatalf("the fraud's country during the hold: %+v, want seen on its first day only", c)
	}
	if dev.fired[rCallVolume] == 0 || dev.hold <= at(2, 4, 0, 0).Unix() {
		t.Fatalf("call.volume did not fire or hold: fired %v, hold %d", dev.fired, dev.hold)
	}
	// After the hold, learning resumes.
	h.obs(out("dev-1", at(3, 1, 12, 0), "+22512345678", time.Minute))
	if c := dev.country("+225"); c.days != 2 {
		t.Fatalf("after the hold: %+v, want a second day", c)
	}
}

// TestDeterministic: the same observations give the same findings and
// the same state, whatever the maps inside did.
func TestDeterministic(t *testing.T) {
	run := func() ([]byte, []byte) {
		h := newHarness(t, nil)
		var os []Observation
		for i := range 5 {
			os = append(os, office(fmt.Sprintf("dev-%d", i), 2)...)
		}
		slices.SortStableFunc(os, func(a, b Observation) int { return a.At().Compare(b.At()) })
		var fs []Finding
		for _, o := range os {
			fs = append(fs, h.obs(o)...)
		}
		for i := range 12 {
			fs = append(fs, h.obs(out("dev-2", at(2, 0, 3, i), "+88161234", time.Minute))...)
			fs = append(fs, h.obs(SecurityEvent{Device: fmt.Sprintf("dev-%d", i%5), Time: at(2, 0, 3, i), Kind: KindScanner, Peer: netip.MustParseAddr("185.0.0.1")})...)
		}
		st, err := h.d.MarshalState()
		if err != nil {
			t.Fatalf("MarshalState = %v", err)
		}
		return []byte(fmt.Sprint(fs)), st
	}
	f1, s1 := run()
	f2, s2 := run()
	if !bytes.Equal(f1, f2) {
		t.Fatalf("findings differ between two runs")
	}
	// The states differ only in the random number key.
	var a, b stateFile
	if err := unmarshalForTest(s1, &a); err != nil {
		t.Fatal(err)
	}
	if err := unmarshalForTest(s2, &b); err != nil {
		t.Fatal(err)
	}
	a.Key, b.Key = nil, nil
	a.Devices, b.Devices = stripDests(a.Devices), stripDests(b.Devices)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("states differ beyond the key")
	}
}

func stripDests(ds []deviceFile) []deviceFile {
	out := slices.Clone(ds)
	for i := range out {
		out[i].Dests = nil
	}
	return out
}

// TestDeviceSize holds the README's bound: a device with every list full
// takes at most 8 KiB (its map entry and LRU node besides).
func TestDeviceSize(t *testing.T) {
	full := unsafe.Sizeof(device{}) + maxCountries*unsafe.Sizeof(countryRec{}) + maxDests*unsafe.Sizeof(destRec{}) + maxNets*unsafe.Sizeof(netRec{})
	if full > 8<<10 {
		t.Fatalf("a full device takes %d bytes, want at most 8 KiB", full)
	}
}

// TestLogValue: the detector holds the key numbers are hashed with; a
// log line never shows its state.
func TestLogValue(t *testing.T) {
	h := scenarioState(t)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "detector", h.d)
	if got := buf.String(); !strings.Contains(got, "detector=REDACTED") {
		t.Fatalf("logged %q, want detector=REDACTED", got)
	}
}
