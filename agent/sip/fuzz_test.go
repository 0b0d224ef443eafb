package sip

import (
	"crypto/x509"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/crypto/policy"
)

// FuzzRequestValidate feeds raw datagrams through sipgo's parser and our
// RFC 3261 request checks, as a plain listener would. Property: no panic,
// and a request validate accepts has the invariants it claims to check.
//
//fuzz:budget 150000
func FuzzRequestValidate(f *testing.F) {
	f.Add([]byte("OPTIONS sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("INVITE sip:alice@127.0.0.1 SIP/7.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("INVITE nobodyKnowsThisScheme:x SIP/2.0\r\nCSeq: 1 INVITE\r\nMax-Forwards: 300\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := sip.ParseMessage(b)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		code, _ := validate(req)
		if code != 0 {
			if code < 400 || code > 599 {
				t.Fatalf("validate = %d, want a 4xx/5xx", code)
			}
			return
		}
		if req.SipVersion != "SIP/2.0" {
			t.Fatalf("validate accepted version %q", req.SipVersion)
		}
		if cs := req.CSeq(); cs == nil {
			t.Fatalf("validate accepted a request without CSeq")
		}
	})
}

// FuzzRefuseDatagram feeds raw datagrams from a foreign source through the
// plain UDP listener's stateless refusal, on real loopback sockets.
// Property: no panic; each datagram is counted at most once and reported
// exactly as often as counted; whatever the phone sends back is one SIP
// 403 response.
//
//fuzz:budget 100000
func FuzzRefuseDatagram(f *testing.F) {
	f.Add([]byte("OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1;rport\r\n" +
		"From: \"sipvicious\"<sip:100@1.1.1.1>;tag=1\r\nTo: <sip:100@1.1.1.1>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\n" +
		"User-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("ACK sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\nCSeq: 1 ACK\r\n\r\n"))
	f.Add([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\nCSeq: 1 INVITE\r\n\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte("INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP [::1;branch=\r\n\r\n"))
	reported := 0
	acct, err := NewAccount(config.Account{Name: "alice", User: "alice", AuthUser: "alice", Domain: "example.test",
		Registrar: "127.0.0.1:1", ServerName: "127.0.0.1", DigestMin: policy.DefaultDigestMin,
		Expires: 600 * time.Second, Keepalive: 90 * time.Second, RetryBase: time.Hour, RetryMax: time.Hour, MaxCalls: 1},
		AccountDeps{Roots: x509.NewCertPool(), Password: func() (string, error) { return "pw", nil },
			Media:    MediaParams{LocalIP: netip.MustParseAddr("127.0.0.1"), PortMin: 40000, PortMax: 40010},
			Instance: "urn:uuid:00000000-0000-0000-0000-000000000001", Log: slog.New(slog.DiscardHandler),
			Events: func(ev Event) {
				if ev.Kind == EventSecurity {
					reported++
				}
			}})
	if err != nil {
		f.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer pc.Close()
	peer, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer peer.Close()
	src, _ := udpSource(peer.LocalAddr())
	buf := make([]byte, 1<<16)
	f.Fuzz(func(t *testing.T, b []byte) {
		before, reportedBefore := acct.Status().Counters.ForeignSource, reported
		acct.refuseDatagram(pc, b, peer.LocalAddr(), src)
		counted := acct.Status().Counters.ForeignSource - before
		if counted > 1 || reported-reportedBefore != counted {
			t.Fatalf("one datagram counted %d times and reported %d times", counted, reported-reportedBefore)
		}
		// Loopback UDP delivers within the sendto: what was sent is queued.
		if err := peer.SetReadDeadline(time.Now()); err != nil {
			t.Fatal(err)
		}
		for {
			n, _, err := peer.ReadFrom(buf)
			if err != nil {
				return
			}
			msg, err := sip.ParseMessage(buf[:n])
			res, ok := msg.(*sip.Response)
			if err != nil || !ok || res.StatusCode != 403 {
				t.Fatalf("phone answered %q (%v), want a 403", buf[:n], err)
			}
		}
	})
}

// FuzzReferTo feeds Refer-To values (the transferee's trust boundary)
// through the policy. Properties: no panic; a value accepted names a plain
// sip:user@domain with no port, parameter or header, and its Replaces,
// when present, round-trips through the form a transferor writes.
//
//fuzz:budget 100000
func FuzzReferTo(f *testing.F) {
	for _, s := range []string{
		"<sip:carol@example.org>",
		`"Carol" <sip:carol@example.org;maddr=1.2.3.4>;x=1`,
		"<sip:carol@example.org?Replaces=a84b4c76e66710%40pc33.atlanta.com%3Bto-tag%3D1928301774%3Bfrom-tag%3Da6c85cf>",
		"<sip:carol@example.org?Replaces=c%40h%3Bto-tag%3Da%3Bfrom-tag%3Db%3Bearly-only&Route=%3Csip:x%3E>",
		"<tel:+19005550100>",
		"sip:carol@example.org;method=BYE",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := parseReferTo(v, "example.org")
		if err != nil {
			return
		}
		u := got.URI
		if u.Scheme != "sip" || !strings.EqualFold(u.Host, "example.org") || u.User == "" || u.Port != 0 ||
			len(u.UriParams) != 0 || len(u.Headers) != 0 || u.Password != "" {
			t.Fatalf("parseReferTo(%q) accepted %+v", v, u)
		}
		back, err := parseReferTo(referToValue(u, got.Replaces), "example.org")
		if err != nil {
			t.Fatalf("re-parse of %q: %v", referToValue(u, got.Replaces), err)
		}
		if back.URI.String() != u.String() || (back.Replaces == nil) != (got.Replaces == nil) ||
			back.Replaces != nil && *back.Replaces != *got.Replaces {
			t.Fatalf("round trip of %q: %+v, want %+v", v, back, got)
		}
	})
}

// FuzzSipfrag feeds NOTIFY bodies (what a transferee reports) through the
// status-line reader. Properties: no panic; an accepted status is a SIP
// status code and its reason survives sipfrag's round trip.
//
//fuzz:budget 300000
func FuzzSipfrag(f *testing.F) {
	f.Add([]byte("SIP/2.0 200 OK\r\n"))
	f.Add([]byte("SIP/2.0 100 Trying\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("SIP/2.0 603 Declined"))
	f.Fuzz(func(t *testing.T, b []byte) {
		code, reason, err := parseSipfrag("message/sipfrag", b)
		if err != nil {
			return
		}
		if code < 100 || code > 699 {
			t.Fatalf("parseSipfrag(%q) = %d", b, code)
		}
		c2, r2, err := parseSipfrag("message/sipfrag", sipfrag(code, reason))
		if err != nil || c2 != code || strings.TrimSpace(r2) != strings.TrimSpace(reason) {
			t.Fatalf("round trip of %d %q = %d %q, %v", code, reason, c2, r2, err)
		}
	})
}
