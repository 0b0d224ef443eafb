package sip

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/hardphone/hardphone/agent/dialplan"
)

func TestDialString(t *testing.T) {
	for in, want := range map[string]string{
		"+49 (30) 1234-56.7": "+49301234567",
		"030 1234567":        "0301234567",
		"*21#":               "*21#",
		"bob":                "bob",
		"bob smith":          "bob smith",
		"1+2":                "1+2",
		"100@pbx":            "100@pbx",
	} {
		if got := dialString(in); got != want {
			t.Errorf("dialString(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDialAllowed: the toll-fraud guard sees the Request-URI's user part
// unescaped, counts what it lets through, and reports each refusal as a
// security incident and a counter.
func TestDialAllowed(t *testing.T) {
	counter, err := dialplan.OpenCounter(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []Event
	a := &Account{log: slog.New(slog.DiscardHandler), clock: realClock{}, dialled: counter,
		events: func(ev Event) { got = append(got, ev) }}
	a.cfg.Name = "alice"
	a.cfg.Dialing = dialplan.Defaults()
	a.cfg.Dialing.Home = "+49"
	a.cfg.Dialing.MaxPerHour = 1
	uri := func(user string) sip.Uri { return sip.Uri{Scheme: "sip", User: user, Host: "pbx.example"} }
	for _, user := range []string{"%2B499001234567", "%2b44%32%30%37", "00%31900555", "%zz"} {
		if err := a.dialAllowed(uri(user)); !errors.Is(err, ErrDialRefused) {
			t.Errorf("dialAllowed(%s) = %v, want ErrDialRefused", user, err)
		}
	}
	if err := a.dialAllowed(uri("0301234567")); err != nil {
		t.Fatalf("national number refused: %v", err)
	}
	if err := a.dialAllowed(uri("0301234567")); !errors.Is(err, ErrDialRefused) {
		t.Fatalf("2nd call in the hour with max_per_hour 1 = %v, want refused", err)
	}
	if a.counters.DialRefused != 4 {
		t.Errorf("dial_refused = %d, want 4 (the unescapable URI is refused as malformed, not counted)", a.counters.DialRefused)
	}
	if len(got) != 4 || got[0].Kind != EventSecurity || got[0].Security.Incident != IncidentDialRefused {
		t.Errorf("events = %+v, want 4 dial_refused incidents", got)
	}
}
