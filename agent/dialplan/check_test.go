package dialplan

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestParseTarget(t *testing.T) {
	tests := []struct{ in, number string }{
		{"0049301234", "0049301234"},
		{"+49 30 1234-5", "+493012345"},
		{"sip:+4930123@pbx.example.com;user=phone", "+4930123"},
		{"sips:110@pbx", "110"},
		{"tel:+1-900-555-0100", "+19005550100"},
		{"sip:bob@example.com", ""},
		{"sip:1+2@x", ""},
	}
	for _, tt := range tests {
		if got := ParseTarget(tt.in).Number; got != tt.number {
			t.Errorf("ParseTarget(%q).Number = %q, want %q", tt.in, got, tt.number)
		}
	}
}

// TestCheck: the toll-fraud rules by example. Home is Germany; the clock is
// a Wednesday afternoon unless a case says otherwise.
func TestCheck(t *testing.T) {
	wed := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	night := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	office, _ := ParseWindow("Mon-Fri 07:00-20:00")
	base := Defaults()
	base.Home = "+49"
	tests := []struct {
		name   string
		edit   func(p *Policy)
		target string
		now    time.Time
		recent int
		ok     bool
	}{
		{"national number", nil, "030123456", wed, 0, true},
		{"national E.164", nil, "sip:+4930123456@pbx", wed, 0, true},
		{"extension", nil, "sip:1234@pbx", wed, 0, true},
		{"SIP name", nil, "sip:bob@example.com", wed, 0, true},
		{"international 00", nil, "0044207946000", wed, 0, false},
		{"international +", nil, "sip:+12025550100@pbx", wed, 0, false},
		{"German premium 0900", nil, "09001234567", wed, 0, false},
		{"US premium", func(p *Policy) { p.International = true }, "+19005550100", wed, 0, false},
		{"international allowed", func(p *Policy) { p.International = true }, "+12025550100", wed, 0, true},
		{"satellite", func(p *Policy) { p.International = true }, "+881631234567", wed, 0, false},
		{"allow list overrides premium", func(p *Policy) { p.Allow = []string{"+49900123*"} }, "0900123456", wed, 0, true},
		{"allow list refuses the rest", func(p *Policy) { p.Allow = []string{"1xx", "sip:*@pbx"} }, "030123456", wed, 0, false},
		{"allow list x pattern", func(p *Policy) { p.Allow = []string{"1xx"} }, "110", wed, 0, true},
		{"allow list URI glob", func(p *Policy) { p.Allow = []string{"sip:*@pbx"} }, "sip:bob@pbx", wed, 0, true},
		{"office hours, at night", func(p *Policy) { p.Hours = []Window{office} }, "030123456", night, 0, false},
		{"office hours, in", func(p *Policy) { p.Hours = []Window{office} }, "030123456", wed, 0, true},
		{"hourly cap reached", func(p *Policy) { p.MaxPerHour = 3 }, "030123456", wed, 3, false},
		{"hourly cap not yet", func(p *Policy) { p.MaxPerHour = 3 }, "030123456", wed, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			p.Premium = append([]string(nil), base.Premium...)
			if tt.edit != nil {
				tt.edit(&p)
			}
			if err := p.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			var recent []time.Time
			for i := 0; i < tt.recent; i++ {
				recent = append(recent, tt.now.Add(-time.Duration(i+1)*time.Minute))
			}
			err := p.Check(ParseTarget(tt.target), tt.now, recent)
			if tt.ok && err != nil || !tt.ok && !errors.Is(err, ErrRefused) {
				t.Fatalf("Check(%q) = %v, want allowed %v", tt.target, err, tt.ok)
			}
		})
	}
}

func TestParseWindow(t *testing.T) {
	for _, bad := range []string{"", "Mon", "Mon 10:00", "Fri-Mon 08:00-09:00", "Mon 25:00-26:00", "Mon 12:00-08:00", "Xyz 08:00-09:00"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) = nil error", bad)
		}
	}
	w, err := ParseWindow("Sat,Sun 09:00-12:30")
	if err != nil {
		t.Fatal(err)
	}
	if !w.contains(time.Date(2026, 12, 6, 12, 29, 0, 0, time.UTC)) || w.contains(time.Date(2026, 12, 6, 12, 30, 0, 0, time.UTC)) ||
		w.contains(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("window Sat,Sun 09:00-12:30 matches the wrong times")
	}
}

// TestCounterSurvivesRestart: the caps count calls placed before a reboot.
func TestCounterSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	c, err := OpenCounter(db)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := c.Take("alice", Policy{}, ParseTarget("100"), now.Add(-time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Take("alice", Policy{}, ParseTarget("100"), now.Add(-25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err = OpenCounter(db)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Recent("alice", now)); n != 5 {
		t.Fatalf("Recent after restart = %d calls, want 5 (the one a day old dropped)", n)
	}
	if n := len(c.Recent("bob", now)); n != 0 {
		t.Fatalf("Recent(bob) = %d, want 0", n)
	}
	// The cap counts what was placed before the restart.
	p := Policy{MaxPerHour: 6}
	if err := c.Take("alice", p, ParseTarget("100"), now); err != nil {
		t.Fatalf("6th call in the hour: %v", err)
	}
	if err := c.Take("alice", p, ParseTarget("100"), now); !errors.Is(err, ErrRefused) {
		t.Fatalf("7th call in the hour = %v, want ErrRefused", err)
	}
	// A clock wound back an hour does not make the calls "later" ones.
	if err := c.Take("alice", p, ParseTarget("100"), now.Add(-time.Hour)); !errors.Is(err, ErrRefused) {
		t.Fatalf("call with the clock wound back = %v, want ErrRefused", err)
	}
	// A call the state file cannot record is refused.
	db.Close()
	if err := c.Take("bob", Policy{}, ParseTarget("100"), now); !errors.Is(err, ErrRefused) {
		t.Fatalf("Take with the state file closed = %v, want ErrRefused", err)
	}
}

// TestTakeConcurrent: dials racing for the last places under a cap never
// all get through.
func TestTakeConcurrent(t *testing.T) {
	c, err := OpenCounter(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	p := Policy{MaxPerHour: 5}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.Take("alice", p, ParseTarget("100"), now) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 5 {
		t.Fatalf("%d of 50 concurrent dials placed under a cap of 5", ok)
	}
}
