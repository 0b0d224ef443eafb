package sip

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestParseReferTo: the transferee's policy on what a REFER may make the
// phone call. Every refusal is one an attacker on the dialog would try.
func TestParseReferTo(t *testing.T) {
	const dom = "example.org"
	tests := []struct {
		name    string
		in      string
		want    string // the URI called; "" when refused
		syntax  bool   // refused as malformed (400) rather than by policy (403)
		replace bool
	}{
		{"name-addr", "<sip:carol@example.org>", "sip:carol@example.org", false, false},
		{"display name", `"Carol, Sales" <sip:carol@example.org>;x=1`, "sip:carol@example.org", false, false},
		{"addr-spec with a header parameter", "sip:carol@example.org;x=1", "sip:carol@example.org", false, false},
		{"number", "<sip:0301234567@example.org;user=phone>", "sip:0301234567@example.org", false, false},
		{"domain case", "<sip:carol@EXAMPLE.org>", "sip:carol@EXAMPLE.org", false, false},
		{"port, maddr and transport dropped", "<sip:carol@example.org:5999;maddr=203.0.113.9;transport=udp>", "sip:carol@example.org", false, false},
		{"method=INVITE", "<sip:carol@example.org;method=INVITE>", "sip:carol@example.org", false, false},
		{"attended", "<sip:carol@example.org?Replaces=c%40h%3Bto-tag%3Da%3Bfrom-tag%3Db>", "sip:carol@example.org", false, true},
		{"registrar host", "<sip:carol@pbx.example.net>", "sip:carol@pbx.example.net", false, false},
		{"escaped user", "<sip:%2B4930123@example.org>", "sip:%2B4930123@example.org", false, false},
		{"attended, header name case", "<sip:carol@example.org?replaces=c%40h%3Bto-tag%3Da%3Bfrom-tag%3Db>", "sip:carol@example.org", false, true},

		{"tel URI", "<tel:+19005550100>", "", false, false},
		{"sips URI", "<sips:carol@example.org>", "", false, false},
		{"http URI", "<http://example.org/premium>", "", false, false},
		{"mailto URI", "<mailto:carol@example.org>", "", false, false},
		{"another domain", "<sip:carol@evil.example>", "", false, false},
		{"domain as a suffix", "<sip:carol@example.org.evil.example>", "", false, false},
		{"IP instead of the domain", "<sip:carol@203.0.113.9>", "", false, false},
		{"no user", "<sip:example.org>", "", false, false},
		{"blank in the user", "<sip:car ol@example.org>", "", false, false},
		{"bad escape in the user", "<sip:car%zzol@example.org>", "", false, false},
		{"long user", "<sip:" + strings.Repeat("1", maxReferUser+1) + "@example.org>", "", false, false},
		{"password", "<sip:carol:secret@example.org>", "", false, false},
		{"method BYE", "<sip:carol@example.org;method=BYE>", "", false, false},
		{"embedded Route", "<sip:carol@example.org?Route=%3Csip:evil.example%3Blr%3E>", "", false, false},
		{"embedded From", "<sip:carol@example.org?From=sip:ceo%40example.org>", "", false, false},
		{"embedded body", "<sip:carol@example.org?body=hello>", "", false, false},
		{"Replaces and Require", "<sip:carol@example.org?Replaces=c%40h%3Bto-tag%3Da%3Bfrom-tag%3Db&Require=replaces>", "", false, false},
		{"two Replaces", "<sip:carol@example.org?Replaces=c%40h%3Bto-tag%3Da%3Bfrom-tag%3Db&Replaces=d%40h%3Bto-tag%3Da%3Bfrom-tag%3Db>", "", false, false},

		{"malformed Replaces", "<sip:carol@example.org?Replaces=c%40h%3Bto-tag%3Da>", "", true, false},
		{"bad escape", "<sip:carol@example.org?Replaces=c%4>", "", true, false},
		{"two values", "<sip:carol@example.org>, <sip:dave@example.org>", "", true, false},
		{"unbalanced", "<sip:carol@example.org", "", true, false},
		{"nested", "<<sip:carol@example.org>>", "", true, false},
		{"addr-spec with headers", "sip:carol@example.org?Route=x", "", true, false},
		{"empty", "", "", true, false},
		{"too long", "<sip:" + strings.Repeat("a", maxReferToLen) + "@example.org>", "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseReferTo(tt.in, dom, "pbx.example.net")
			if tt.want == "" {
				wantErr := errReferTarget
				if tt.syntax {
					wantErr = errReferSyntax
				}
				if err == nil || !errors.Is(err, wantErr) && !(tt.syntax && errors.Is(err, errReplacesSyntax)) {
					t.Fatalf("parseReferTo(%q) = %s, %v; want %v", tt.in, got.URI.String(), err, wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseReferTo(%q) = %v, want %s", tt.in, err, tt.want)
			}
			if s := got.URI.String(); s != tt.want || (got.Replaces != nil) != tt.replace {
				t.Errorf("parseReferTo(%q) = %s (replaces %v), want %s (replaces %v)", tt.in, s, got.Replaces != nil, tt.want, tt.replace)
			}
		})
	}
}

// testAccount is an account with calls for the Replaces checks; nothing of
// it touches the network.
func testAccount(allowRefer bool, calls ...*Call) *Account {
	a := &Account{calls: map[DialogID]*Call{}, log: slog.New(slog.DiscardHandler), events: func(Event) {}}
	a.cfg.Name, a.cfg.User, a.cfg.Domain, a.cfg.AllowRefer = "alice", "alice", "example.org", allowRefer
	for _, c := range calls {
		c.acct = a
		a.addCall(c)
	}
	return a
}

// invite is an INVITE from user (no To tag) with the extra header lines,
// arrived over transport.
func invite(t *testing.T, transport, user string, extra ...string) *sip.Request {
	t.Helper()
	raw := "INVITE sip:alice@example.org SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK9\r\n" +
		"From: <sip:" + user + "@example.org>;tag=new1\r\nTo: <sip:alice@example.org>\r\n" +
		"Call-ID: new@example.org\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
	for _, h := range extra {
		raw += h + "\r\n"
	}
	req := parse(t, raw+"Content-Length: 0\r\n\r\n")
	req.SetTransport(transport)
	return req
}

// TestReplacedCall: RFC 3891 §3 and the transfer policy on an INVITE with
// Replaces, attack by attack. A refusal leaves the call as it was: not
// marked as being replaced, still up.
func TestReplacedCall(t *testing.T) {
	newCall := func(state string) *Call {
		return &Call{id: "c1@example.org", dlg: DialogID{"c1@example.org", "ours", "theirs"}, peer: "sip:bob@example.org",
			peerAOR: "bob@example.org", state: state, tlsHop: true, done: make(chan struct{})}
	}
	good := "Replaces: c1@example.org;to-tag=ours;from-tag=theirs"
	tests := []struct {
		name      string
		allow     bool
		state     string
		plainHop  bool
		replacing bool
		transport string
		from      string
		extra     []string
		code      int
	}{
		{"the party of the call", true, "established", false, false, "TLS", "bob", []string{good}, 0},
		{"referred by the party", true, "established", false, false, "TLS", "carol", []string{good, "Referred-By: <sip:bob@example.org>"}, 0},
		{"referred-by compact", true, "established", false, false, "TLS", "carol", []string{good, "b: <sip:bob@example.org>"}, 0},

		{"allow_refer off", false, "established", false, false, "TLS", "bob", []string{good}, 403},
		{"over a plain listener", true, "established", false, false, "UDP", "bob", []string{good}, 403},
		{"call over a plain hop", true, "established", true, false, "TLS", "bob", []string{good}, 403},
		{"hijack: a stranger", true, "established", false, false, "TLS", "mallory", []string{good}, 403},
		{"hijack: referred by a stranger", true, "established", false, false, "TLS", "mallory", []string{good, "Referred-By: <sip:carol@example.org>"}, 403},
		{"hijack: Referred-By another domain", true, "established", false, false, "TLS", "mallory", []string{good, "Referred-By: <sip:bob@evil.example>"}, 403},
		{"hijack: two Referred-By", true, "established", false, false, "TLS", "mallory", []string{good, "Referred-By: <sip:mallory@example.org>", "Referred-By: <sip:bob@example.org>"}, 403},
		{"foreign to-tag", true, "established", false, false, "TLS", "bob", []string{"Replaces: c1@example.org;to-tag=evil;from-tag=theirs"}, 481},
		{"foreign from-tag", true, "established", false, false, "TLS", "bob", []string{"Replaces: c1@example.org;to-tag=ours;from-tag=evil"}, 481},
		{"tags swapped", true, "established", false, false, "TLS", "bob", []string{"Replaces: c1@example.org;to-tag=theirs;from-tag=ours"}, 481},
		{"another Call-ID", true, "established", false, false, "TLS", "bob", []string{"Replaces: c2@example.org;to-tag=ours;from-tag=theirs"}, 481},
		{"early dialog (ringing)", true, "ringing", false, false, "TLS", "bob", []string{good}, 481},
		{"answered, not yet confirmed", true, "answered", false, false, "TLS", "bob", []string{good}, 481},
		{"early-only on a confirmed dialog", true, "established", false, false, "TLS", "bob", []string{good + ";early-only"}, 486},
		{"ended", true, "ended", false, false, "TLS", "bob", []string{good}, 603},
		{"already being replaced", true, "established", false, true, "TLS", "bob", []string{good}, 603},
		{"two Replaces", true, "established", false, false, "TLS", "bob", []string{good, good}, 400},
		{"Replaces and Join", true, "established", false, false, "TLS", "bob", []string{good, "Join: c1@example.org;to-tag=ours;from-tag=theirs"}, 400},
		{"malformed", true, "established", false, false, "TLS", "bob", []string{"Replaces: c1@example.org;to-tag=ours"}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCall(tt.state)
			c.tlsHop, c.replacing = !tt.plainHop, tt.replacing
			a := testAccount(tt.allow, c)
			got, code, why := a.replacedCall(invite(t, tt.transport, tt.from, tt.extra...))
			if code != tt.code {
				t.Fatalf("replacedCall = %d (%v), want %d", code, why, tt.code)
			}
			if tt.code != 0 {
				if got != nil || c.replacing != tt.replacing {
					t.Errorf("refusal returned %p and left replacing %v, want nil and %v", got, c.replacing, tt.replacing)
				}
				return
			}
			if got != c || !c.replacing {
				t.Fatalf("replacedCall = %p (replacing %v), want the call, marked", got, c.replacing)
			}
			// A second INVITE for the same dialog finds it taken.
			if _, code, _ := a.replacedCall(invite(t, tt.transport, tt.from, tt.extra...)); code != 603 {
				t.Errorf("second Replaces = %d, want 603", code)
			}
			c.releaseReplace()
			if c.replacing {
				t.Errorf("releaseReplace left the mark")
			}
		})
	}
	if _, code, _ := testAccount(true).replacedCall(invite(t, "TLS", "bob")); code != 0 {
		t.Errorf("INVITE without Replaces = %d, want 0 (not a replacement)", code)
	}
}

// TestAORKey: user parts compare exactly (unescaped), hosts without case.
func TestAORKey(t *testing.T) {
	tests := []struct {
		a, b sip.Uri
		same bool
	}{
		{sip.Uri{User: "bob", Host: "Example.ORG"}, sip.Uri{User: "bob", Host: "example.org", Port: 5061}, true},
		{sip.Uri{User: "%62ob", Host: "example.org"}, sip.Uri{User: "bob", Host: "example.org"}, true},
		{sip.Uri{User: "Bob", Host: "example.org"}, sip.Uri{User: "bob", Host: "example.org"}, false},
		{sip.Uri{User: "bob", Host: "example.org"}, sip.Uri{User: "bob", Host: "example.org.evil"}, false},
	}
	for _, tt := range tests {
		if got := aorKey(tt.a) == aorKey(tt.b); got != tt.same {
			t.Errorf("aorKey(%v) == aorKey(%v) = %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}

// TestReferLimiter: a burst, then one per referEvery.
func TestReferLimiter(t *testing.T) {
	l := newReferLimiter()
	now := stepClock{}.now
	for i := range referBurst {
		if !l.AllowN(now, 1) {
			t.Fatalf("REFER %d of the burst refused", i+1)
		}
	}
	if l.AllowN(now, 1) {
		t.Fatalf("REFER beyond the burst allowed")
	}
	if !l.AllowN(now.Add(referEvery), 1) {
		t.Fatalf("REFER after %v refused", referEvery)
	}
}
