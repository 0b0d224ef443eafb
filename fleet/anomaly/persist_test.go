package anomaly

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func unmarshalForTest(b []byte, f *stateFile) error { return json.Unmarshal(b, f) }

// scenarioState runs a little of everything and returns the detector.
func scenarioState(t testing.TB) *harness {
	t.Helper()
	h := newHarness(t, func(c *Config) {
		r := c.Rules[RuleCallVolume]
		r.Block = Duration(time.Hour)
		r.Quarantine = Duration(2 * time.Hour)
		c.Rules[RuleCallVolume] = r
	})
	h.quietSorted(append(office("dev-1", 2), office("dev-2", 2)...)...)
	for i := range 10 {
		h.obs(out("dev-1", at(2, 0, 2, i), "+88161234", time.Minute))
		h.obs(SecurityEvent{Device: fmt.Sprintf("dev-%d", i), Time: at(2, 0, 2, i), Kind: KindScanner, Peer: netip.MustParseAddr("185.0.0.1")})
		h.obs(SecurityEvent{Device: fmt.Sprintf("dev-%d", i), Time: at(2, 0, 2, i), Kind: KindSIPAuthFailure, Peer: netip.MustParseAddr("2001:db8::1")})
		h.obs(CredentialChange{Device: fmt.Sprintf("dev-%d", i), Time: at(2, 0, 2, i), What: "sip_password"})
		h.obs(Registration{Device: "dev-2", Time: at(2, 0, 2, i), Source: netip.AddrFrom4([4]byte{100, byte(i), 0, 1})})
	}
	return h
}

func TestStateRoundTrip(t *testing.T) {
	h := scenarioState(t)
	blob, err := h.d.MarshalState()
	if err != nil {
		t.Fatalf("MarshalState = %v", err)
	}
	d2, err := New(h.d.Config(), WithClock(func() time.Time { return h.now }))
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	if err := d2.ReadState(bytes.NewReader(blob)); err != nil {
		t.Fatalf("ReadState = %v", err)
	}
	again, err := d2.MarshalState()
	if err != nil || !bytes.Equal(again, blob) {
		t.Fatalf("MarshalState(restored) differs from the blob it was restored from (%v)", err)
	}
	if h.d.Stats() != d2.Stats() || len(d2.Active(at(2, 0, 2, 30))) != 2 {
		t.Fatalf("Stats() = %+v, want %+v; Active = %v", d2.Stats(), h.d.Stats(), d2.Active(at(2, 0, 2, 30)))
	}
	// Both go on alike: the next observations make the same findings.
	next := []Observation{
		out("dev-1", at(2, 0, 2, 50), "+88161234", time.Minute),
		SecurityEvent{Device: "dev-77", Time: at(2, 0, 2, 51), Kind: KindScanner, Peer: netip.MustParseAddr("185.0.0.2")},
		out("dev-2", at(2, 0, 9, 0), "+37112345678", 45*time.Minute),
	}
	for _, o := range next {
		h.now = o.At()
		f1, err1 := h.d.Observe(o)
		f2, err2 := d2.Observe(o)
		if err1 != nil || err2 != nil || fmt.Sprint(f1) != fmt.Sprint(f2) {
			t.Fatalf("Observe(%+v): original %v %v, restored %v %v", o, f1, err1, f2, err2)
		}
	}
}

func TestUnmarshalStateRefuses(t *testing.T) {
	h := scenarioState(t)
	good, _ := h.d.MarshalState()
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dev0 := func(m map[string]any) map[string]any { return m["devices"].([]any)[0].(map[string]any) }
	for _, tt := range []struct {
		name string
		blob []byte
		want error
	}{
		{"newer version", edit(func(m map[string]any) { m["version"] = 2 }), ErrStateVersion},
		{"no version", edit(func(m map[string]any) { delete(m, "version") }), ErrInvalid},
		{"not JSON", []byte("{"), ErrInvalid},
		{"unknown field", edit(func(m map[string]any) { m["extra"] = 1 }), ErrInvalid},
		{"short key", edit(func(m map[string]any) { m["key"] = "AAAA" }), ErrInvalid},
		{"hourly ring odd", edit(func(m map[string]any) { dev0(m)["hourly"] = []int{1} }), ErrInvalid},
		{"hourly ring zero count", edit(func(m map[string]any) { dev0(m)["hourly"] = []int{1, 0} }), ErrInvalid},
		{"hourly ring descending", edit(func(m map[string]any) { dev0(m)["hourly"] = []int{5, 1, 4, 1} }), ErrInvalid},
		{"hourly ring past its end", edit(func(m map[string]any) { dev0(m)["hourly"] = []int{histHours, 1} }), ErrInvalid},
		{"hourly count past uint8", edit(func(m map[string]any) { dev0(m)["hourly"] = []int{3, 256} }), ErrInvalid},
		{"device twice", edit(func(m map[string]any) { m["devices"] = append(m["devices"].([]any), m["devices"].([]any)[0]) }), ErrInvalid},
		{"bad device ID", edit(func(m map[string]any) { dev0(m)["id"] = "a b" }), ErrInvalid},
		{"too many calls", edit(func(m map[string]any) {
			calls := dev0(m)["calls"].([]any)
			for len(calls) <= recentCalls {
				calls = append(calls, calls[0])
			}
			dev0(m)["calls"] = calls
		}), ErrInvalid},
		{"NaN-ish rate", edit(func(m map[string]any) { dev0(m)["auth"] = map[string]any{"mean": -1, "dev": 0} }), ErrInvalid},
		{"time in year 10000", edit(func(m map[string]any) { m["now"] = int64(maxTS + 1) }), ErrInvalid},
		{"network not masked", edit(func(m map[string]any) {
			m["networks"].([]any)[0].(map[string]any)["k"] = "100.1.0.1/24"
		}), ErrInvalid},
		{"unknown rule fired", edit(func(m map[string]any) { dev0(m)["fired"] = map[string]any{"call.bogus": 1741000000} }), ErrInvalid},
		{"response for a future finding", edit(func(m map[string]any) {
			m["responses"].([]any)[0].(map[string]any)["finding"] = 1e6
		}), ErrInvalid},
		{"quarantine with an override", edit(func(m map[string]any) {
			r := m["responses"].([]any)
			r[1].(map[string]any)["override"] = r[0].(map[string]any)["override"]
		}), ErrInvalid},
		{"data after", append(append([]byte(nil), good...), "{}"...), ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := h.d.MarshalState()
			if err := h.d.UnmarshalState(tt.blob); !errors.Is(err, tt.want) {
				t.Fatalf("UnmarshalState = %v, want %v", err, tt.want)
			}
			after, _ := h.d.MarshalState()
			if !bytes.Equal(before, after) {
				t.Fatalf("a refused blob changed the state")
			}
		})
	}
}

func TestStateSizeBound(t *testing.T) {
	c := DefaultConfig()
	c.MaxDevices, c.MaxSources, c.MaxNetworks = 1, 1, 1
	d, err := New(c)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	big := bytes.Repeat([]byte(" "), int(MaxStateBytes(c))+1)
	if err := d.UnmarshalState(big); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("UnmarshalState(too big) = %v", err)
	}
	if err := d.ReadState(bytes.NewReader(big)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ReadState(too big) = %v", err)
	}
}

// TestStateTrimmedToCaps: a state saved with more devices than this
// configuration allows keeps the most recently seen.
func TestStateTrimmedToCaps(t *testing.T) {
	h := scenarioState(t)
	blob, _ := h.d.MarshalState()
	c := h.d.Config()
	c.MaxDevices = 3
	d, err := New(c)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	if err := d.UnmarshalState(blob); err != nil {
		t.Fatalf("UnmarshalState = %v", err)
	}
	if s := d.Stats(); s.Devices != 3 {
		t.Fatalf("Stats().Devices = %d, want 3", s.Devices)
	}
	var ids []string
	d.st.devices.each(func(id string, _ *device) { ids = append(ids, id) })
	if fmt.Sprint(ids) != "[dev-2 dev-9 dev-1]" {
		t.Fatalf("kept %v, want the 3 most recently seen", ids)
	}
}

// TestStateAtItsBounds: what the detector itself makes at the edges
// (a flood of failures with the largest counts, a finding dated near the
// last valid time with the longest responses) saves and restores.
func TestStateAtItsBounds(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		r := c.Rules[RuleAuthFailures]
		r.Quarantine = Duration(90 * 24 * time.Hour)
		c.Rules[RuleAuthFailures] = r
		c.LearnHold = Duration(28 * 24 * time.Hour)
	})
	for i := range 3000 {
		h.obs(SecurityEvent{Device: "dev-1", Time: t0.Add(time.Duration(i) * time.Millisecond), Kind: KindSIPAuthFailure, Count: maxCount})
	}
	late := time.Unix(lastValidTS, 0).UTC()
	for i := range 20 {
		h.obs(SecurityEvent{Device: "dev-2", Time: late, Kind: KindSIPAuthFailure, Count: maxCount})
		h.obs(out("dev-2", late, fmt.Sprintf("+8816%08d", i), time.Hour))
	}
	blob, err := h.d.MarshalState()
	if err != nil {
		t.Fatalf("MarshalState = %v", err)
	}
	d, _ := New(h.d.Config())
	if err := d.UnmarshalState(blob); err != nil {
		t.Fatalf("UnmarshalState(what the detector wrote) = %v", err)
	}
	if _, err := h.d.Observe(Registration{Device: "dev-3", Time: late.Add(time.Second), Source: site}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Observe(after the last valid time) = %v, want ErrInvalid", err)
	}
}
