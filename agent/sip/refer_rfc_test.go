package sip

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// parse reads a raw request the way the transport does.
func parse(t *testing.T, raw string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatalf("ParseMessage: %v\n%s", err, raw)
	}
	req, ok := m.(*sip.Request)
	if !ok {
		t.Fatalf("ParseMessage gave %T, want a request", m)
	}
	return req
}

// rawRequest is a request with the extra header lines given.
func rawRequest(method string, toTag string, extra ...string) string {
	s := method + " sip:alice@example.org SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK1\r\n" +
		"From: <sip:bob@example.org>;tag=bob1\r\nTo: <sip:alice@example.org>"
	if toTag != "" {
		s += ";tag=" + toTag
	}
	s += "\r\nCall-ID: c1@example.org\r\nCSeq: 2 " + method + "\r\nMax-Forwards: 70\r\n"
	for _, h := range extra {
		s += h + "\r\n"
	}
	return s + "Content-Length: 0\r\n\r\n"
}

// RFC 3891 §6.1, and the example of §7 ("Replaces:
// 425928@bobster.example.org;to-tag=7743;from-tag=6472").
func TestParseReplaces(t *testing.T) {
	tests := []struct {
		in   string
		want replaces
		ok   bool
	}{
		{"425928@bobster.example.org;to-tag=7743;from-tag=6472", replaces{"425928@bobster.example.org", "7743", "6472", false}, true},
		{"98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff;early-only", replaces{"98732@sip.example.com", "ff87ff", "r33th4x0r", true}, true},
		{" 12@h ; TO-TAG = a ; From-Tag=b ; foo=bar", replaces{"12@h", "a", "b", false}, true},
		{"12@h;to-tag=a", replaces{}, false},                           // from-tag missing
		{"12@h;from-tag=b", replaces{}, false},                         // to-tag missing
		{"12@h;to-tag=a;to-tag=c;from-tag=b", replaces{}, false},       // twice
		{"12@h;to-tag=;from-tag=b", replaces{}, false},                 // empty tag
		{"12@h;to-tag=a;from-tag=b;early-only=yes", replaces{}, false}, // flag with a value
		{"12@h;to-tag=a;from-tag=b;early-only;early-only", replaces{}, false},
		{";to-tag=a;from-tag=b", replaces{}, false},                             // no Call-ID
		{"a b;to-tag=a;from-tag=b", replaces{}, false},                          // Call-ID not a word
		{"12@h;to-tag=a;b;from-tag=c", replaces{"12@h", "a", "c", false}, true}, // generic-param without value
		{"12@h;to-tag=a;from-tag=b;", replaces{}, false},                        // empty parameter
		{"12@h;to-tag=a;b\"c;from-tag=b", replaces{}, false},
		{"12@h;to-tag=a<b;from-tag=b", replaces{}, false},
	}
	for _, tt := range tests {
		got, err := parseReplaces(tt.in)
		if tt.ok && (err != nil || got != tt.want) || !tt.ok && !errors.Is(err, errReplacesSyntax) {
			t.Errorf("parseReplaces(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	long := "x@h;to-tag=a;from-tag=b;p=" + string(make([]byte, maxReplacesLen))
	if _, err := parseReplaces(long); !errors.Is(err, errReplacesSyntax) {
		t.Errorf("parseReplaces(%d bytes) = %v, want refused", len(long), err)
	}
}

// RFC 3891 §3: "the to-tag parameter is compared to the local tag, and the
// from-tag parameter is compared to the remote tag". Our dialog as the
// transferor sees it, handed to the transferee, names the target's dialog
// as the target keys it.
func TestReplacesNamesTheTargetsDialog(t *testing.T) {
	ours := DialogID{CallID: "c@h", LocalTag: "alice-tag", RemoteTag: "carol-tag"}
	targets := DialogID{CallID: "c@h", LocalTag: "carol-tag", RemoteTag: "alice-tag"}
	r := replacesFor(ours)
	if got := r.dialog(); got != targets {
		t.Fatalf("replacesFor(%v).dialog() = %v, want the target's %v", ours, got, targets)
	}
	back, err := parseReplaces(r.String())
	if err != nil || back != r {
		t.Fatalf("parseReplaces(%q) = %+v, %v; want %+v", r.String(), back, err, r)
	}
}

// RFC 5589 §7: the Refer-To of an attended transfer carries the Replaces
// as an escaped URI header; the transferee reads back what we wrote.
func TestReferToValueRoundTrip(t *testing.T) {
	r := replaces{CallID: "a84b4c76e66710@pc33.atlanta.com", ToTag: "1928301774", FromTag: "a6c85cf"}
	v := referToValue(sip.Uri{Scheme: "sip", User: "carol", Host: "example.org"}, &r)
	want := "<sip:carol@example.org?Replaces=a84b4c76e66710%40pc33.atlanta.com%3Bto-tag%3D1928301774%3Bfrom-tag%3Da6c85cf>"
	if v != want {
		t.Fatalf("referToValue = %s\nwant %s", v, want)
	}
	got, err := parseReferTo(v, "example.org")
	if err != nil {
		t.Fatalf("parseReferTo(%s) = %v", v, err)
	}
	if got.URI.String() != "sip:carol@example.org" || got.Replaces == nil || *got.Replaces != r {
		t.Errorf("parseReferTo(%s) = %s, %+v; want sip:carol@example.org, %+v", v, got.URI.String(), got.Replaces, r)
	}
	if got, err := parseReferTo(referToValue(sip.Uri{Scheme: "sip", User: "bob", Host: "example.org"}, nil), "example.org"); err != nil || got.Replaces != nil {
		t.Errorf("blind Refer-To: %+v, %v; want no Replaces", got, err)
	}
}

// RFC 3515 §2.4.5: the NOTIFY body begins with a Status-Line.
func TestSipfrag(t *testing.T) {
	for _, tt := range []struct {
		code   int
		reason string
	}{{100, "Trying"}, {180, "Ringing"}, {200, "OK"}, {603, "Declined"}} {
		code, reason, err := parseSipfrag(sipfragContentType, sipfrag(tt.code, tt.reason))
		if err != nil || code != tt.code || reason != tt.reason {
			t.Errorf("parseSipfrag(sipfrag(%d, %q)) = %d, %q, %v", tt.code, tt.reason, code, reason, err)
		}
	}
	tests := []struct {
		ct, body string
		code     int
	}{
		{"message/sipfrag", "SIP/2.0 200 OK\r\nContact: <sip:x@y>\r\n\r\n", 200},
		{"Message/SipFrag ; version=2.0", "SIP/2.0 486 Busy Here", 486},
		{"message/sipfrag", "SIP/2.0 183", 183},
		{"text/plain", "SIP/2.0 200 OK", 0},
		{"message/sipfrag", "SIP/3.0 200 OK", 0},
		{"message/sipfrag", "SIP/2.0 2000 OK", 0},
		{"message/sipfrag", "SIP/2.0 099 Low", 0},
		{"message/sipfrag", "SIP/2.0 700 High", 0},
		{"message/sipfrag", "INVITE sip:x SIP/2.0", 0},
		{"message/sipfrag", "", 0},
		{"message/sipfrag", "SIP/2.0 200 " + string(make([]byte, maxSipfragLine)), 0},
	}
	for _, tt := range tests {
		code, _, err := parseSipfrag(tt.ct, []byte(tt.body))
		if code != tt.code || (tt.code == 0) != errors.Is(err, errSipfrag) {
			t.Errorf("parseSipfrag(%q, %q) = %d, %v; want %d", tt.ct, tt.body, code, err, tt.code)
		}
	}
	if _, reason, _ := parseSipfrag("message/sipfrag", []byte("SIP/2.0 200 O\x1bK\x00")); reason != "OK" {
		t.Errorf("control characters kept in reason: %q", reason)
	}
}

// RFC 3515 §2.4.4 and §2.4.6: Event is refer, with the REFER's CSeq as id
// when given; compact form "o" (RFC 6665 §8.2.1).
func TestReferEvent(t *testing.T) {
	tests := []struct {
		hdr         string
		id          uint32
		hasID, isOK bool
	}{
		{"Event: refer", 0, false, true},
		{"Event: refer;id=93809824", 93809824, true, true},
		{"o: REFER ; id = 7", 7, true, true},
		{"Event: presence", 0, false, false},
		{"Event: refer;id=x", 0, false, false},
		{"Event: refer;id=99999999999", 0, false, false},
	}
	for _, tt := range tests {
		req := parse(t, rawRequest("NOTIFY", "t1", tt.hdr))
		id, hasID, ok := referEvent(req)
		if id != tt.id || hasID != tt.hasID || ok != tt.isOK {
			t.Errorf("referEvent(%q) = %d, %v, %v; want %d, %v, %v", tt.hdr, id, hasID, ok, tt.id, tt.hasID, tt.isOK)
		}
	}
	two := parse(t, rawRequest("NOTIFY", "t1", "Event: refer", "Event: refer;id=2"))
	if _, _, ok := referEvent(two); ok {
		t.Errorf("referEvent with two Event headers = ok, want refused")
	}
}

// RFC 6665 §8.2.3: terminated ends the subscription; RFC 3515 §2.4.7 the
// final NOTIFY carries it.
func TestSubscriptionTerminated(t *testing.T) {
	for hdr, want := range map[string]bool{
		"Subscription-State: terminated;reason=noresource": true,
		"Subscription-State: TERMINATED":                   true,
		"Subscription-State: active;expires=60":            false,
		"X-Other: terminated":                              false,
	} {
		if got := subscriptionTerminated(parse(t, rawRequest("NOTIFY", "t1", hdr))); got != want {
			t.Errorf("subscriptionTerminated(%q) = %v, want %v", hdr, got, want)
		}
	}
}

// RFC 3515 §2.4.1: exactly one Refer-To; a second one, one split by a
// comma, or the compact form "r" next to the long one all count.
func TestReferToCount(t *testing.T) {
	tests := []struct {
		hdrs []string
		want int
	}{
		{[]string{"Refer-To: <sip:carol@example.org>"}, 1},
		{[]string{"r: <sip:carol@example.org>"}, 1},
		{[]string{"Refer-To: <sip:carol@example.org>", "r: <sip:dave@example.org>"}, 2},
		{[]string{"Refer-To: <sip:carol@example.org>, <sip:dave@example.org>"}, 2},
		{nil, 0},
	}
	for _, tt := range tests {
		req := parse(t, rawRequest("REFER", "t1", tt.hdrs...))
		if got := len(headerValues(req, "Refer-To", "r")); got != tt.want {
			t.Errorf("Refer-To values of %q = %d, want %d", tt.hdrs, got, tt.want)
		}
	}
}

// RFC 3891 §3: "if a Replaces header field is present in a request other
// than INVITE, the UAS MUST reject the request with a 400".
func TestValidateReplaces(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want int
	}{
		{"initial INVITE", rawRequest("INVITE", "", "Replaces: c@h;to-tag=a;from-tag=b"), 0},
		{"BYE", rawRequest("BYE", "t1", "Replaces: c@h;to-tag=a;from-tag=b"), 400},
		{"REFER", rawRequest("REFER", "t1", "Replaces: c@h;to-tag=a;from-tag=b"), 400},
		{"re-INVITE", rawRequest("INVITE", "t1", "Replaces: c@h;to-tag=a;from-tag=b"), 400},
		{"OPTIONS outside a dialog", rawRequest("OPTIONS", "", "Replaces: c@h;to-tag=a;from-tag=b"), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := validate(parse(t, tt.raw)); got != tt.want {
				t.Errorf("validate = %d, want %d", got, tt.want)
			}
		})
	}
}

// RFC 3515 §2.4.5: the final NOTIFY carries the target's answer, or the
// nearest status for a call the phone refused to place.
func TestStatusOf(t *testing.T) {
	tests := []struct {
		err  error
		code int
	}{
		{&ResponseError{"INVITE", 486, "Busy Here"}, 486},
		{fmt.Errorf("dial: %w", &ResponseError{"INVITE", 404, "Not Found"}), 404},
		{fmt.Errorf("dial: %w", ErrDialRefused), 403},
		{fmt.Errorf("dial: %w", ErrCallLimit), 486},
		{fmt.Errorf("dial: %w", ErrInsecureMedia), 488},
		{ErrNotRegistered, 503},
		{context.DeadlineExceeded, 408},
		{errors.New("other"), 500},
	}
	for _, tt := range tests {
		if code, _ := statusOf(tt.err); code != tt.code {
			t.Errorf("statusOf(%v) = %d, want %d", tt.err, code, tt.code)
		}
	}
}
