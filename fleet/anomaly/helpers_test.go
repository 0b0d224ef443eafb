package anomaly

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// harness drives a Detector whose clock follows the observations.
type harness struct {
	t   testing.TB
	d   *Detector
	now time.Time
}

func newHarness(t testing.TB, mutate func(*Config)) *harness {
	t.Helper()
	c := DefaultConfig()
	c.HomeCountries = []string{"+49"}
	c.Infrastructure = []netip.Prefix{netip.MustParsePrefix("81.0.1.0/24")}
	if mutate != nil {
		mutate(&c)
	}
	h := &harness{t: t, now: t0}
	d, err := New(c, WithClock(func() time.Time { return h.now }))
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	h.d = d
	return h
}

// obs feeds one observation and returns the findings.
func (h *harness) obs(o Observation) []Finding {
	h.t.Helper()
	if o.At().After(h.now) {
		h.now = o.At()
	}
	fs, err := h.d.Observe(o)
	if err != nil {
		h.t.Fatalf("Observe(%+v) = %v", o, err)
	}
	return fs
}

// quiet feeds observations and fails on any finding.
func (h *harness) quiet(os ...Observation) {
	h.t.Helper()
	for _, o := range os {
		if fs := h.obs(o); len(fs) > 0 {
			h.t.Fatalf("Observe(%+v) = %s, want no finding", o, ruleNames(fs))
		}
	}
}

func ruleNames(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return out
}

func hasRule(fs []Finding, rule string) (Finding, bool) {
	i := slices.IndexFunc(fs, func(f Finding) bool { return f.Rule == rule })
	if i < 0 {
		return Finding{}, false
	}
	return fs[i], true
}

func evidence(f Finding, key string) string {
	for _, e := range f.Evidence {
		if e.Key == key {
			return e.Value
		}
	}
	return ""
}

var (
	site     = netip.MustParseAddr("198.51.100.10")
	registra = netip.MustParseAddr("81.0.1.10")
)

func out(dev string, t time.Time, number string, d time.Duration) Call {
	return Call{Device: dev, Time: t, Direction: Outbound, Number: number, Duration: Duration(d), Answered: d > 0}
}

// office returns weeks of dev's office life from t0: on weekdays two
// 3-minute calls an hour from 09:00 to 17:00 to its 20 colleagues (+49),
// and a registration every 30 minutes, day and night, from the site.
func office(dev string, weeks int) []Observation {
	var os []Observation
	for day := range weeks * 7 {
		base := t0.Add(time.Duration(day) * 24 * time.Hour)
		for m := 0; m < 24*60; m += 30 {
			os = append(os, Registration{Device: dev, Time: base.Add(time.Duration(m) * time.Minute), Source: site})
			if day%7 >= 5 || m < 9*60 || m >= 17*60 {
				continue
			}
			os = append(os, out(dev, base.Add(time.Duration(m+5)*time.Minute), fmt.Sprintf("+4930%07d", (day*48+m/30)%20), 3*time.Minute))
		}
	}
	return os
}

// officeWeeks feeds office(dev, weeks), expecting no finding.
func (h *harness) officeWeeks(dev string, weeks int) {
	h.t.Helper()
	h.quiet(office(dev, weeks)...)
}

// quietSorted feeds observations in time order (stable), expecting no
// finding.
func (h *harness) quietSorted(os ...Observation) {
	h.t.Helper()
	slices.SortStableFunc(os, func(a, b Observation) int { return a.At().Compare(b.At()) })
	h.quiet(os...)
}

// at is week w (from 0), day d (0 Monday), hh:mm.
func at(w, d, hh, mm int) time.Time {
	return t0.Add(time.Duration(w*7+d)*24*time.Hour + time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute)
}
