package integration

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

// dtlsOffer is a DTLS-SRTP offer with the spoofer's own fingerprint.
func dtlsOffer(port int) string {
	fp := strings.ToUpper(strings.TrimSuffix(strings.Repeat("ab:", 32), ":"))
	return fmt.Sprintf("v=0\r\no=spoof 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d UDP/TLS/RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=fingerprint:sha-256 %s\r\na=setup:actpass\r\na=rtcp-mux\r\na=sendrecv\r\n", port, fp)
}

// udpExchange sends msg from laddr to the phone's plain listener and
// returns the first response line, or "" when none came within wait.
func udpExchange(t *testing.T, laddr *net.UDPAddr, to, msg string, wait time.Duration) string {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		t.Fatalf("dial udp from %v: %v", laddr, err)
	}
	defer c.Close()
	msg = strings.ReplaceAll(msg, "LOCAL", c.LocalAddr().String())
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if wait == 0 {
		return ""
	}
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		if strings.HasPrefix(line, "SIP/2.0 1") {
			continue // provisional
		}
		return line
	}
}

func udpRequest(method, callID, fromTag, toTag string, cseq int, body string) string {
	to := "<sip:alice@127.0.0.1>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:alice@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK%s\r\n", method, randHex(8))
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:spoof@127.0.0.1>;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n", fromTag, to, callID, cseq, method)
	b.WriteString("Contact: <sip:spoof@LOCAL>\r\n")
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// TestAttackSpoofedUDPInvite: a UDP INVITE on a plain listener from the
// registrar's IP but another port is refused (403); one that also spoofs
// the port is refused too (488: no SRTP keying is safe over a plain hop,
// DTLS-SRTP included, since the spoofer signals its own fingerprint), and
// a blind ACK with a wrong To tag answers nothing: no call, no media.
func TestAttackSpoofedUDPInvite(t *testing.T) {
	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{mediaSecurity: "dtls", top: `listen = ["udp:127.0.0.1:5090"]`})
	_, regPort, err := net.SplitHostPort(e.hostile.Addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(regPort)
	for _, tt := range []struct {
		name  string
		laddr *net.UDPAddr
		want  string
	}{
		{"registrar IP, another port", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, "SIP/2.0 403"},
		{"registrar IP and port", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, "SIP/2.0 488"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := "spoof-" + randHex(6)
			got := udpExchange(t, tt.laddr, "127.0.0.1:5090", udpRequest("INVITE", id, "sf", "", 1, dtlsOffer(40000)), 5*time.Second)
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("spoofed INVITE answered %q, want %q", got, tt.want)
			}
			udpExchange(t, tt.laddr, "127.0.0.1:5090", udpRequest("ACK", id, "sf", "blind", 1, ""), 0)
			if n := len(callsByID(p, id)); n != 0 {
				t.Errorf("phone has %d calls from the spoofed INVITE, want none", n)
			}
		})
	}
	if st := p.acct.Status(); st.Counters.CallsIn != 0 {
		t.Errorf("calls_in = %d after spoofed INVITEs, want 0", st.Counters.CallsIn)
	}
	// Calls over the registrar flow still work.
	c := newHCall(t, f)
	res := c.invite(dtlsOffer(40002))
	if res.Status() != 200 {
		t.Fatalf("INVITE over the registrar flow answered %q, want 200", res.Start)
	}
	c.ack()
	if res := c.inDialog("BYE", c.from, c.to, ""); res.Status() != 200 {
		t.Fatalf("BYE answered %q, want 200", res.Start)
	}
}

// ownAddr is an address the test puts on lo so the phone has an own
// address that is not loopback.
const ownAddr = "192.0.2.77"

func addOwnAddr(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("ip", "addr", "add", ownAddr+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "addr", "del", ownAddr+"/32", "dev", "lo").CombinedOutput(); err != nil {
			t.Errorf("ip addr del: %v: %s", err, out)
		}
	})
}

// TestAttackHostileMediaAddress: an offer aiming the phone's media at a
// loopback, unspecified, multicast or link-local address, at the phone
// itself or at a port below 1024 is answered 488 with a Warning; such an
// answer to the phone's own offer ends the call (ACK, then BYE). Loopback
// is refused by default and allowed only when the config says so.
func TestAttackHostileMediaAddress(t *testing.T) {
	addOwnAddr(t)
	t.Run("default config refuses loopback", func(t *testing.T) {
		e := newHostileEnv(t)
		_, f := hostilePhone(t, e, phoneConf{strictMedia: true})
		peer := newSRTPPeer(t)
		c := newHCall(t, f)
		res := c.invite(peer.offer())
		if res.Status() != 488 || res.Get("Warning") == "" {
			t.Errorf("offer with c=127.0.0.1 answered %q (Warning %q), want 488 with a Warning", res.Start, res.Get("Warning"))
		}
	})

	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{})
	peer := newSRTPPeer(t)
	for _, tt := range []struct {
		name, ip string
		port     int
	}{
		{"unspecified", "0.0.0.0", 30000},
		{"multicast", "224.0.0.1", 30000},
		{"link-local", "169.254.10.1", 30000},
		{"the phone's own address", ownAddr, 30000},
		{"the phone's own media port", "127.0.0.1", int(p.cfg.Media.PortMin)},
		{"port 80", "127.0.0.1", 80},
	} {
		t.Run("offer/"+tt.name, func(t *testing.T) {
			before := p.acct.Status().Counters.CallsRefusedMedia
			c := newHCall(t, f)
			res := c.invite(peer.offerAt(tt.ip, tt.port))
			if res.Status() != 488 {
				t.Errorf("offer with c=%s port %d answered %q, want 488", tt.ip, tt.port, res.Start)
			} else if res.Get("Warning") == "" {
				t.Errorf("488 without a Warning")
			} else {
				t.Logf("488 Warning: %s", res.Get("Warning"))
			}
			if res.Status() == 200 {
				c.to = test.Tag(res.Get("To"))
				c.ack()
				c.inDialog("BYE", c.from, c.to, "")
			}
			if got := p.acct.Status().Counters.CallsRefusedMedia; got != before+1 {
				t.Errorf("calls_refused_media = %d, want %d", got, before+1)
			}
		})
	}
	t.Run("rtcp at port 53", func(t *testing.T) {
		offer := strings.Replace(peer.offer(), "a=rtcp-mux\r\n", "a=rtcp:53 IN IP4 127.0.0.1\r\n", 1)
		c := newHCall(t, f)
		if res := c.invite(offer); res.Status() != 488 {
			t.Errorf("offer with a=rtcp:53 answered %q, want 488", res.Start)
		}
	})
	t.Run("answer/multicast", func(t *testing.T) {
		errc := make(chan error, 1)
		go func() {
			c, err := p.acct.Dial(context.Background(), "sip:bob@hostile.test", sip.CallOptions{})
			if err == nil {
				c.Hangup(context.Background())
			}
			errc <- err
		}()
		inv := f.Next(t, 10*time.Second, func(m *test.SIPMessage) bool { return m.IsRequest() && m.Method() == "INVITE" })
		respond(t, f, inv, 200, "OK", "callee", strings.Replace(peer.answer(t, inv.Body), "IN IP4 127.0.0.1", "IN IP4 224.0.0.1", -1))
		f.Next(t, 10*time.Second, test.SIPRequestOf("ACK", inv.Get("Call-ID")))
		bye := f.Next(t, 10*time.Second, test.SIPRequestOf("BYE", inv.Get("Call-ID")))
		respond(t, f, bye, 200, "OK", "", "")
		if err := <-errc; err == nil {
			t.Errorf("Dial with a multicast answer = nil error, want a media refusal")
		} else {
			t.Logf("refused: %v", err)
		}
	})
	// A legitimate call still works.
	legit := newSRTPPeer(t)
	c := newHCall(t, f)
	phoneKey, _ := establish(t, p, c, legit)
	legit.expectMedia(t, phoneKey)
	if res := c.inDialog("BYE", c.from, c.to, ""); res.Status() != 200 {
		t.Fatalf("BYE answered %q, want 200", res.Start)
	}
}
