package events

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"
)

// parsed is an RFC 5424 message as an independent parser (go-syslog's
// RFC 5424 machine) reads it.
type parsed struct {
	pri   uint8
	time  time.Time
	host  string
	app   string
	msgID string
	sd    map[string]map[string]string
	msg   string
}

func parseSyslog(msg []byte) (*parsed, error) {
	m, err := rfc5424.NewParser().Parse(msg)
	if err != nil {
		return nil, err
	}
	sm := m.(*rfc5424.SyslogMessage)
	p := &parsed{}
	if sm.Priority != nil {
		p.pri = *sm.Priority
	}
	if sm.Timestamp != nil {
		p.time = *sm.Timestamp
	}
	for _, f := range []struct {
		dst *string
		src *string
	}{{&p.host, sm.Hostname}, {&p.app, sm.Appname}, {&p.msgID, sm.MsgID}, {&p.msg, sm.Message}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	if sm.StructuredData != nil {
		p.sd = *sm.StructuredData
	}
	return p, nil
}

func scannerRecord(t *testing.T, ua string) *Record {
	t.Helper()
	ev, err := sanitize(Event{
		Kind: KindScanner, Account: "alice", Time: time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC),
		Peer: netip.MustParseAddrPort("[2001:db8::1]:5060"), Detail: Detail{"user_agent": ua},
	})
	if err != nil {
		t.Fatalf("sanitize = %v", err)
	}
	ev.Seq = 42
	rec, err := decodeRecord(encodeEvent(Hash{1}, &ev))
	if err != nil {
		t.Fatalf("decodeRecord = %v", err)
	}
	rec.chain = "00112233445566778899aabbccddeeff"
	return rec
}

// TestSyslogFormat checks the message against RFC 5424 §6 field by field
// and against an independent parser.
func TestSyslogFormat(t *testing.T) {
	rec := scannerRecord(t, `friendly-scanner "x"] \ end`)
	msg, err := formatRecord(rec, "phone-1")
	if err != nil {
		t.Fatalf("formatRecord = %v", err)
	}
	// §6.2.1: PRI = facility * 8 + severity; auth (4) and warning (4).
	if want := "<36>1 2025-03-01T12:00:00.123456Z phone-1 hardphone - sip.scanner ["; !strings.HasPrefix(string(msg), want) {
		t.Errorf("formatRecord() = %q, want prefix %q", msg, want)
	}
	// §6.3.3: '"', '\' and ']' escaped with a backslash.
	if want := `user_agent="friendly-scanner \"x\"\] \\ end"`; !strings.Contains(string(msg), want) {
		t.Errorf("formatRecord() = %q, want it to hold %s", msg, want)
	}
	p, err := parseSyslog(msg)
	if err != nil {
		t.Fatalf("RFC 5424 parser refuses %q: %v", msg, err)
	}
	checks := []struct{ what, got, want string }{
		{"MSGID", p.msgID, "sip.scanner"},
		{"HOSTNAME", p.host, "phone-1"},
		{"APP-NAME", p.app, "hardphone"},
		{"seq", p.sd[sdChain]["seq"], "42"},
		{"hash", p.sd[sdChain]["hash"], hex.EncodeToString(rec.Hash[:])},
		{"chain", p.sd[sdChain]["chain"], rec.chain},
		{"peer", p.sd[sdEvent]["peer"], "[2001:db8::1]:5060"},
		{"account", p.sd[sdEvent]["account"], "alice"},
		{"user_agent", p.sd[sdDetail]["user_agent"], `friendly-scanner "x"] \ end`},
		{"MSG", p.msg, "SIP scanner user agent seen from [2001:db8::1]:5060"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("parsed %s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if p.pri != 36 || !p.time.Equal(rec.Time) {
		t.Errorf("parsed PRI %d time %v, want 36 and %v", p.pri, p.time, rec.Time)
	}
}

// TestSyslogWorstCaseFits: the largest event the bounds allow, every
// value made of characters that need escaping, fits MaxMessage.
func TestSyslogWorstCaseFits(t *testing.T) {
	d := Detail{}
	for i := 0; i < MaxDetail; i++ {
		d[strings.Repeat(string(rune('a'+i)), MaxDetailKey)] = strings.Repeat(`"`, MaxValue)
	}
	ev, err := sanitize(Event{Kind: KindStaleMetadata, Account: strings.Repeat(`]`, MaxAccount), Detail: d,
		Peer: netip.MustParseAddrPort("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), Time: time.Now()})
	if err != nil {
		t.Fatalf("sanitize = %v", err)
	}
	ev.Seq = 1<<64 - 1
	rec, err := decodeRecord(encodeEvent(Hash{}, &ev))
	if err != nil {
		t.Fatalf("decodeRecord = %v", err)
	}
	msg, err := formatRecord(rec, strings.Repeat("h", 300))
	if err != nil {
		t.Fatalf("formatRecord(worst case) = %v", err)
	}
	if _, err := parseSyslog(msg); err != nil {
		t.Errorf("worst case does not parse: %v", err)
	}
	t.Logf("worst-case message: %d bytes of %d", len(msg), MaxMessage)
}

// TestFrame checks RFC 5425 §4.3: MSG-LEN SP SYSLOG-MSG, MSG-LEN the
// octet count of SYSLOG-MSG.
func TestFrame(t *testing.T) {
	if got, want := string(frame(nil, []byte("<36>1 x"))), "7 <36>1 x"; got != want {
		t.Errorf("frame() = %q, want %q", got, want)
	}
	if got, want := string(frame([]byte("3 abc"), []byte("é"))), "3 abc2 é"; got != want {
		t.Errorf("frame(append) = %q, want %q", got, want)
	}
}

func TestSyslogHostname(t *testing.T) {
	tests := []struct{ in, want string }{
		{"phone-1.example", "phone-1.example"},
		{"", "-"},
		{"a b\x00c\u00e9", "abc"},
		{strings.Repeat("x", 300), strings.Repeat("x", 255)},
	}
	for _, tt := range tests {
		if got := syslogHostname(tt.in); got != tt.want {
			t.Errorf("syslogHostname(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
