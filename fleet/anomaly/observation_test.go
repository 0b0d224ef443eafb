package anomaly

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/events"
)

// TestKindsMatchPhone: every kind mirrored here is one the phone emits.
func TestKindsMatchPhone(t *testing.T) {
	for _, k := range []string{KindSIPAuthFailure, KindControlRefused, KindForeignSource, KindForeignDialog, KindREFERRefused,
		KindScanner, KindINVITEFlood, KindCallCap, KindChallengeRefused, KindMediaRefused, KindDialRefused} {
		if !events.Kind(k).Known() {
			t.Errorf("kind %q is not one of agent/events' kinds", k)
		}
	}
}

var t0 = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC) // a Monday

func TestObservationValidate(t *testing.T) {
	peer := netip.MustParseAddr("192.0.2.7")
	good := Call{Device: "dev-1", Time: t0, Direction: Outbound, Number: "+4930123456", Duration: Duration(time.Minute), Answered: true}
	for _, tt := range []struct {
		name string
		o    Observation
		want string // "" valid
	}{
		{"call", good, ""},
		{"extension", Call{Device: "dev-1", Time: t0, Direction: Inbound, Number: "1234"}, ""},
		{"no device", Call{Time: t0, Direction: Outbound}, "device ID"},
		{"device with a space", Call{Device: "dev 1", Time: t0, Direction: Outbound}, "device ID"},
		{"device too long", Call{Device: strings.Repeat("d", 65), Time: t0, Direction: Outbound}, "device ID"},
		{"no time", Call{Device: "dev-1", Direction: Outbound}, "time"},
		{"no direction", Call{Device: "dev-1", Time: t0}, "direction"},
		{"number with letters", Call{Device: "dev-1", Time: t0, Direction: Outbound, Number: "+49abc"}, "number"},
		{"number plus alone", Call{Device: "dev-1", Time: t0, Direction: Outbound, Number: "+"}, "number"},
		{"number too long", Call{Device: "dev-1", Time: t0, Direction: Outbound, Number: "+" + strings.Repeat("1", 32)}, "number"},
		{"negative duration", Call{Device: "dev-1", Time: t0, Direction: Outbound, Duration: -1, Answered: true}, "duration"},
		{"day-long call", Call{Device: "dev-1", Time: t0, Direction: Outbound, Duration: Duration(25 * time.Hour), Answered: true}, "duration"},
		{"unanswered with a duration", Call{Device: "dev-1", Time: t0, Direction: Outbound, Duration: 1}, "unanswered"},
		{"registration", Registration{Device: "dev-1", Time: t0, Source: peer}, ""},
		{"registration without source", Registration{Device: "dev-1", Time: t0}, "source"},
		{"registration with zone", Registration{Device: "dev-1", Time: t0, Source: netip.MustParseAddr("fe80::1%eth0")}, "source"},
		{"event", SecurityEvent{Device: "dev-1", Time: t0, Kind: KindScanner, Peer: peer, Count: 3}, ""},
		{"event of a future kind", SecurityEvent{Device: "dev-1", Time: t0, Kind: "sip.new_thing"}, ""},
		{"event kind upper case", SecurityEvent{Device: "dev-1", Time: t0, Kind: "SIP.scanner"}, "kind"},
		{"event kind empty", SecurityEvent{Device: "dev-1", Time: t0}, "kind"},
		{"event count negative", SecurityEvent{Device: "dev-1", Time: t0, Kind: KindScanner, Count: -1}, "count"},
		{"event count huge", SecurityEvent{Device: "dev-1", Time: t0, Kind: KindScanner, Count: 1 << 30}, "count"},
		{"credential", CredentialChange{Device: "dev-1", Time: t0, What: "sip_password", Actor: "admin-alice"}, ""},
		{"credential actor with a newline", CredentialChange{Device: "dev-1", Time: t0, What: "sip_password", Actor: "a\nb"}, "actor"},
		{"credential without what", CredentialChange{Device: "dev-1", Time: t0}, "credential"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("validate(%+v) = %v, want nil", tt.o, err)
			case tt.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("validate(%+v) = %v, want ErrInvalid naming %q", tt.o, err, tt.want)
			}
		})
	}
}

func TestObservationEncoding(t *testing.T) {
	peer := netip.MustParseAddr("2001:db8::7")
	for _, o := range []Observation{
		Call{Device: "dev-1", Time: t0, Direction: Outbound, Number: "+4930123456", Duration: Duration(90 * time.Second), Answered: true},
		Call{Device: "dev-1", Time: t0, Direction: Inbound},
		Registration{Device: "dev-2", Time: t0.Add(time.Hour), Source: netip.MustParseAddr("198.51.100.9")},
		SecurityEvent{Device: "dev-3", Time: t0, Kind: KindScanner, Peer: peer, Count: 2},
		SecurityEvent{Device: "dev-3", Time: t0, Kind: KindControlRefused},
		CredentialChange{Device: "dev-4", Time: t0, What: "sip_password", Actor: "admin-alice"},
	} {
		b, err := EncodeObservation(o)
		if err != nil {
			t.Fatalf("EncodeObservation(%+v) = %v", o, err)
		}
		got, err := DecodeObservation(b)
		if err != nil {
			t.Fatalf("DecodeObservation(%s) = %v", b, err)
		}
		again, err := EncodeObservation(got)
		if err != nil || string(again) != string(b) {
			t.Fatalf("EncodeObservation(DecodeObservation(%s)) = %s, %v", b, again, err)
		}
	}
	for _, bad := range []string{
		`{"type":"call","device":"dev-1","time":"2025-03-03T00:00:00Z","direction":"sideways","duration":"0s","answered":false}`,
		`{"type":"call","device":"dev-1","time":"2025-03-03T00:00:00Z","direction":"out","duration":"0s","answered":false,"extra":1}`,
		`{"type":"teleport","device":"dev-1"}`,
		`{"type":"registration","device":"dev-1","time":"2025-03-03T00:00:00Z","source":"not an address"}`,
		`{"type":"security_event","device":"dev-1","time":"2025-03-03T00:00:00Z","kind":"sip.scanner"} {}`,
		`{"type":"credential_change","device":"dev-1","time":"2025-03-03T00:00:00Z","what":"x","actor":"` + strings.Repeat("a", 65) + `"}`,
		`{"type":"call","device":"dev-1","number":"` + strings.Repeat("1", MaxObservationBytes) + `"}`,
	} {
		if _, err := DecodeObservation([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeObservation(%.80s) = %v, want ErrInvalid", bad, err)
		}
	}
}
