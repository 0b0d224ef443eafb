package integration

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
)

// tortureMessages follow the cases of RFC 4475 (SIP torture tests): valid
// but unusual messages the agent must answer, and invalid ones it must
// answer with 4xx or drop. Either way it must keep serving. The source is the
// registrar's address, so the messages get past the source policy and reach
// the parser and the handlers.
func tortureMessages(local string) map[string]string {
	hdr := func(method, ruri, callID string, extra string) string {
		return fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\nMax-Forwards: 70\r\n"+
			"From: <sip:t@127.0.0.1>;tag=%s\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: %s\r\nCSeq: 1 %s\r\n%s",
			method, ruri, local, callID, callID, callID, method, extra)
	}
	long := strings.Repeat("x", 4000)
	plainSDP := sdpPlain(30000)
	return map[string]string{
		// §3.1.1.1 wsinv: folded header lines and odd whitespace.
		"wsinv": "OPTIONS sip:alice@127.0.0.1 SIP/2.0\r\nVia  :   SIP/2.0/UDP " + local + ";branch=z9hG4bKws\r\n" +
			"Max-Forwards:\r\n  70\r\nFrom: <sip:t@127.0.0.1>\r\n ;tag=ws\r\nTo:\t<sip:alice@127.0.0.1>\r\nCall-ID: ws\r\nCSeq: 1\r\n OPTIONS\r\nContent-Length: 0\r\n\r\n",
		// §3.1.1.2 intmeth: an unknown method token.
		"intmeth": hdr("!interesting-Method0123456789_*+`.%indeed'~", "sip:alice@127.0.0.1", "intmeth", "Content-Length: 0\r\n\r\n"),
		// §3.1.1.3 esc01: escaped characters in the Request-URI.
		"esc01": hdr("OPTIONS", "sip:%61lice@127.0.0.1;%74ransport=udp", "esc01", "Content-Length: 0\r\n\r\n"),
		// §3.1.1.6 longreq: very long header values.
		"longreq": hdr("OPTIONS", "sip:alice@127.0.0.1", "longreq", "X-Long: "+long+"\r\nSubject: "+long+"\r\nContent-Length: 0\r\n\r\n"),
		// §3.1.1.11 mpart01-like: INVITE with a body that is not SDP.
		"notsdp": hdr("INVITE", "sip:alice@127.0.0.1", "notsdp", "Contact: <sip:t@127.0.0.1>\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"),
		// §3.1.2.1 badinv01: Content-Length larger than the body.
		"badinv01": hdr("INVITE", "sip:alice@127.0.0.1", "badinv01", "Contact: <sip:t@127.0.0.1>\r\nContent-Type: application/sdp\r\nContent-Length: 9999\r\n\r\n"+plainSDP),
		// §3.1.2.2 clerr: negative Content-Length.
		"clerr": hdr("INVITE", "sip:alice@127.0.0.1", "clerr", "Contact: <sip:t@127.0.0.1>\r\nContent-Type: application/sdp\r\nContent-Length: -999\r\n\r\n"),
		// §3.1.2.3 scalar02: out-of-range scalar fields.
		"scalar02": strings.Replace(hdr("OPTIONS", "sip:alice@127.0.0.1", "scalar02", "Expires: 1020304050607080900\r\nContent-Length: 0\r\n\r\n"),
			"Max-Forwards: 70", "Max-Forwards: 300", 1),
		// §3.1.2.5 ltgtruri: Request-URI in angle brackets.
		"ltgtruri": hdr("INVITE", "<sip:alice@127.0.0.1>", "ltgtruri", "Contact: <sip:t@127.0.0.1>\r\nContent-Length: 0\r\n\r\n"),
		// §3.1.2.8 badaspec: unterminated quoted display name.
		"badaspec": strings.Replace(hdr("OPTIONS", "sip:alice@127.0.0.1", "badaspec", "Content-Length: 0\r\n\r\n"),
			"From: <sip:t@127.0.0.1>", `From: "Bel:\"Ringer <sip:t@127.0.0.1>`, 1),
		// §3.1.2.13 mismatch01: CSeq method differs from the request method.
		"mismatch01": strings.Replace(hdr("OPTIONS", "sip:alice@127.0.0.1", "mismatch01", "Content-Length: 0\r\n\r\n"),
			"CSeq: 1 OPTIONS", "CSeq: 1 INVITE", 1),
		// §3.1.2.16 bigcode: a response with an absurd status code.
		"bigcode": "SIP/2.0 4294967301 better not break the receiver\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bKbig\r\n" +
			"From: <sip:t@127.0.0.1>;tag=b\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: bigcode\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		// §3.3.1 insuf: required headers missing.
		"insuf": "INVITE sip:alice@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n",
		// §3.3.8 zeromf: Max-Forwards of zero.
		"zeromf": strings.Replace(hdr("OPTIONS", "sip:alice@127.0.0.1", "zeromf", "Content-Length: 0\r\n\r\n"), "Max-Forwards: 70", "Max-Forwards: 0", 1),
		// §3.3.13 unksm: unknown URI scheme.
		"unkscm": hdr("OPTIONS", "nobodyKnowsThisScheme:totallyopaquecontent", "unkscm", "Content-Length: 0\r\n\r\n"),
		// §3.4.2 badvers: unknown protocol version.
		"badvers": strings.Replace(hdr("OPTIONS", "sip:alice@127.0.0.1", "badvers", "Content-Length: 0\r\n\r\n"), "SIP/2.0\r\n", "SIP/7.0\r\n", 1),
		// A plain-RTP INVITE that is well formed: 488 by media policy.
		"plaininvite": hdr("INVITE", "sip:alice@127.0.0.1", "plaininvite", "Contact: <sip:t@127.0.0.1>\r\nContent-Type: application/sdp\r\n"+
			fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(plainSDP), plainSDP)),
		// SDES over UDP: keys must never cross a plain hop.
		"sdesudp": hdr("INVITE", "sip:alice@127.0.0.1", "sdesudp", "Contact: <sip:t@127.0.0.1>\r\nContent-Type: application/sdp\r\n"+
			fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(sdpSDES(30000, "AES_CM_128_HMAC_SHA1_80")), sdpSDES(30000, "AES_CM_128_HMAC_SHA1_80"))),
		"junk":  "\x00\x01\x02\xff\xfe garbage \r\n\r\n",
		"empty": "\r\n\r\n\r\n",
	}
}

// tortureWant are the answers that are certain; the rest may be answered
// with any 4xx or dropped.
var tortureWant = map[string]string{
	"plaininvite": "SIP/2.0 488",
	"sdesudp":     "SIP/2.0 488",
	"notsdp":      "SIP/2.0 488",
	"intmeth":     "SIP/2.0 405",
	"esc01":       "SIP/2.0 200",
	"longreq":     "SIP/2.0 200",
	"wsinv":       "SIP/2.0 200",
	"badvers":     "SIP/7.0 505",
	"unkscm":      "SIP/2.0 416",
	"mismatch01":  "SIP/2.0 400",
	"scalar02":    "SIP/2.0 400",
}

func TestTortureUDPAndTCP(t *testing.T) {
	e := newEnv(t)
	// Plain listeners take requests from listen_peer only (IP and port):
	// the torture comes from there.
	p := e.startPhone(t, phoneConf{user: "alice", top: `listen = ["udp:127.0.0.1:5090", "tcp:127.0.0.1:5091"]
listen_peer = "127.0.0.1:5095"`}, nil)
	p.waitRegistered(t)
	for _, network := range []string{"udp", "tcp"} {
		port := map[string]string{"udp": "5090", "tcp": "5091"}[network]
		for name := range tortureMessages("127.0.0.1:1") {
			t.Run(network+"/"+name, func(t *testing.T) {
				var c net.Conn
				if network == "udp" {
					c = dialFrom(t, network, "127.0.0.1:5095", "127.0.0.1:"+port)
				} else {
					// A TCP peer needs no fixed port: the handshake proves
					// its address.
					var err error
					if c, err = net.Dial(network, "127.0.0.1:"+port); err != nil {
						t.Fatalf("dial: %v", err)
					}
				}
				defer c.Close()
				msg := tortureMessages(c.LocalAddr().String())[name]
				if network == "tcp" {
					msg = strings.ReplaceAll(msg, "SIP/2.0/UDP", "SIP/2.0/TCP")
				}
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatalf("write: %v", err)
				}
				if err := c.SetReadDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
					t.Fatal(err)
				}
				// Every message comes from the one listen_peer port, where the
				// phone's retransmissions of earlier final responses (an
				// INVITE's 488 waits for an ACK) arrive too: take only the
				// answer to this message's Call-ID.
				_, id, _ := strings.Cut(msg, "Call-ID: ")
				id, _, _ = strings.Cut(id, "\r\n")
				buf := make([]byte, 8192)
				var resp string
				for {
					n, err := c.Read(buf)
					if err != nil {
						break
					}
					if id != "" && !strings.Contains(string(buf[:n]), "Call-ID: "+id+"\r\n") {
						continue
					}
					resp, _, _ = strings.Cut(string(buf[:n]), "\r\n")
					break
				}
				want, ok := tortureWant[name]
				if strings.HasPrefix(msg, "INVITE") && strings.HasPrefix(resp, "SIP/2.0 503") {
					// INVITEs from the one peer are rate-limited: a 503 is a
					// refusal as good as the 488 media policy would give.
					ok = false
				}
				if strings.HasPrefix(resp, "SIP/2.0 2") && strings.HasPrefix(msg, "INVITE") {
					t.Errorf("%s: INVITE answered %q; a plain or malformed INVITE must not be accepted", name, resp)
				}
				if ok && !strings.HasPrefix(resp, want) {
					t.Errorf("%s: answered %q, want %q", name, resp, want)
				}
				t.Logf("%s: %q", name, resp)
			})
		}
	}
	// Still serving: a clean OPTIONS is answered and the registration holds.
	c := dialFrom(t, "udp", "127.0.0.1:5095", "127.0.0.1:5090")
	defer c.Close()
	opt := "OPTIONS sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP " + c.LocalAddr().String() + ";branch=z9hG4bKfinal\r\nMax-Forwards: 70\r\n" +
		"From: <sip:t@127.0.0.1>;tag=f\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: final\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(opt)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
		t.Fatalf("final OPTIONS: %q, %v; want 200 (agent must survive the torture)", buf[:n], err)
	}
	if !p.acct.Registered() {
		t.Errorf("registration lost during torture")
	}
}

// TestSIPpLoad sends a burst of plain-RTP INVITEs with SIPp: every one must
// be refused (SRTP is mandatory) and the agent must keep serving.
func TestSIPpLoad(t *testing.T) {
	e := newEnv(t)
	p := e.startPhone(t, phoneConf{user: "alice", top: `listen = ["udp:127.0.0.1:5090"]
listen_peer = "127.0.0.1:5095"`}, nil)
	p.waitRegistered(t)
	res := test.RunSIPp(t, "-sn", "uac", "-s", "alice", "-i", "127.0.0.1", "-p", "5095",
		"-m", "50", "-r", "25", "-l", "10", "-timeout", "20s", "-recv_timeout", "3000", "127.0.0.1:5090")
	t.Logf("sipp exit %d", res.ExitCode)
	st := p.acct.Status()
	// Every INVITE refused: by media policy (plain RTP), or, beyond the
	// per-source rate, with 503 before its SDP is even read.
	if got := st.Counters.CallsRefusedMedia + st.Counters.INVITEFlood; got < 50 {
		t.Errorf("calls_refused_media + invite_flood = %d + %d, want 50 (every plain-RTP INVITE refused)\n%s",
			st.Counters.CallsRefusedMedia, st.Counters.INVITEFlood, res.Output)
	}
	if st.Counters.INVITEFlood == 0 {
		t.Errorf("invite_flood = 0, want the burst of 25/s from one source rate-limited")
	}
	if st.Counters.CallsIn != 0 {
		t.Errorf("calls_in = %d, want 0", st.Counters.CallsIn)
	}
	if !p.acct.Registered() {
		t.Errorf("registration lost under load")
	}
}

// dialFrom connects from the fixed local address laddr (listen_peer). A TCP
// connection closes with a reset (linger 0), so the next one may reuse the
// same address at once instead of waiting out TIME_WAIT.
func dialFrom(t *testing.T, network, laddr, raddr string) net.Conn {
	t.Helper()
	var d net.Dialer
	var err error
	switch network {
	case "udp":
		d.LocalAddr, err = net.ResolveUDPAddr("udp", laddr)
	default:
		d.LocalAddr, err = net.ResolveTCPAddr("tcp", laddr)
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Dial(network, raddr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", raddr, laddr, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.SetLinger(0); err != nil {
			t.Fatal(err)
		}
	}
	return c
}
