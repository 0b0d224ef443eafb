package integration

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

// hcall is one dialog the hostile registrar (test/hostile_registrar.go)
// drives toward the phone with raw SIP: it plays the caller.
type hcall struct {
	t      *testing.T
	f      *test.HostileFlow
	callID string
	from   string // our From tag
	to     string // the phone's To tag, once it answered
	user   string // the caller's user part
	cseq   int
	branch string // of the last INVITE
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func newHCall(t *testing.T, f *test.HostileFlow) *hcall {
	// A caller of its own per call: the phone rate-limits INVITEs per caller.
	return &hcall{t: t, f: f, callID: "hostile-" + randHex(8) + "@test", from: "f" + randHex(6), user: "caller-" + randHex(4), cseq: 1}
}

// request builds a request of this dialog with the tags and CSeq given.
func (c *hcall) request(method string, cseq int, fromTag, toTag, branch, body string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:alice@%s;transport=tls SIP/2.0\r\n", method, c.f.Remote())
	fmt.Fprintf(&b, "Via: SIP/2.0/TLS %s;branch=z9hG4bK%s\r\n", c.f.Local(), branch)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@hostile.test>;tag=%s\r\n", c.user, fromTag)
	to := "<sip:alice@hostile.test>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	fmt.Fprintf(&b, "To: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n", to, c.callID, cseq, method)
	fmt.Fprintf(&b, "Contact: <sip:%s@%s;transport=tls>\r\n", c.user, c.f.Local())
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// sendInvite writes the initial INVITE (no To tag) with a fresh branch.
func (c *hcall) sendInvite(sdp string) {
	c.branch = randHex(8)
	c.f.Write(c.t, c.request("INVITE", c.cseq, c.from, "", c.branch, sdp))
}

// final waits for the final response to method.
func (c *hcall) final(method string) *test.SIPMessage {
	c.t.Helper()
	return c.f.Next(c.t, 10*time.Second, test.SIPResponseTo(method, c.callID, true))
}

// invite sends the INVITE and waits for its final response, keeping the
// phone's To tag of a 2xx.
func (c *hcall) invite(sdp string) *test.SIPMessage {
	c.t.Helper()
	c.sendInvite(sdp)
	res := c.final("INVITE")
	if res.Status() >= 200 && res.Status() < 300 {
		c.to = test.Tag(res.Get("To"))
	}
	return res
}

// ack acknowledges the phone's 2xx with the dialog's tags.
func (c *hcall) ack() { c.ackWith(c.from, c.to) }

func (c *hcall) ackWith(fromTag, toTag string) {
	c.f.Write(c.t, c.request("ACK", c.cseq, fromTag, toTag, randHex(8), ""))
}

// inDialog sends a request inside the dialog (or what claims to be) with
// the next CSeq and waits for the phone's final answer.
func (c *hcall) inDialog(method, fromTag, toTag, body string) *test.SIPMessage {
	c.t.Helper()
	c.cseq++
	return c.inDialogCSeq(method, c.cseq, fromTag, toTag, body)
}

func (c *hcall) inDialogCSeq(method string, cseq int, fromTag, toTag, body string) *test.SIPMessage {
	c.t.Helper()
	c.f.Write(c.t, c.request(method, cseq, fromTag, toTag, randHex(8), body))
	return c.f.Next(c.t, 10*time.Second, func(m *test.SIPMessage) bool {
		return test.SIPResponseTo(method, c.callID, true)(m) && m.Get("CSeq") == fmt.Sprintf("%d %s", cseq, method)
	})
}

// respond answers a request from the phone with code, extra header lines
// and an SDP body.
func respond(t *testing.T, f *test.HostileFlow, req *test.SIPMessage, code int, reason, toTag, body string, extra ...string) {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, v := range req.All("Via") {
		fmt.Fprintf(&b, "Via: %s\r\n", v)
	}
	to := req.Get("To")
	if toTag != "" && test.Tag(to) == "" {
		to += ";tag=" + toTag
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n", req.Get("From"), to, req.Get("Call-ID"), req.Get("CSeq"))
	fmt.Fprintf(&b, "Contact: <sip:peer@%s;transport=tls>\r\n", f.Local())
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	f.Write(t, b.String())
}

// srtpPeer is the media end of a hostile or legitimate caller: a UDP
// socket and an SDES key (AES_CM_128_HMAC_SHA1_80, rtcp-mux).
type srtpPeer struct {
	conn *net.UDPConn
	key  []byte // 30 bytes: master key and salt
}

func newSRTPPeer(t *testing.T) *srtpPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("srtp peer: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	key := make([]byte, 30)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return &srtpPeer{conn: conn, key: key}
}

func (p *srtpPeer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// offerAt is an SDES offer naming ip and port as where we receive.
func (p *srtpPeer) offerAt(ip string, port int) string {
	return fmt.Sprintf("v=0\r\no=mallory 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%s\r\na=rtcp-mux\r\na=sendrecv\r\n",
		ip, ip, port, base64.StdEncoding.EncodeToString(p.key))
}

// offer is an SDES offer naming the peer's own socket.
func (p *srtpPeer) offer() string { return p.offerAt("127.0.0.1", int(p.addr().Port())) }

// answer answers the phone's SDES offer with our key under the tag the
// phone offered AES_CM_128_HMAC_SHA1_80 with.
func (p *srtpPeer) answer(t *testing.T, offer string) string {
	t.Helper()
	tag := ""
	for _, l := range strings.Split(offer, "\n") {
		if f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "a=crypto:")); len(f) >= 2 && strings.HasPrefix(l, "a=crypto:") && f[1] == "AES_CM_128_HMAC_SHA1_80" {
			tag = f[0]
		}
	}
	if tag == "" {
		t.Fatalf("phone offer has no AES_CM_128_HMAC_SHA1_80 line:\n%s", offer)
	}
	return strings.Replace(p.offer(), "a=crypto:1 ", "a=crypto:"+tag+" ", 1)
}

// phoneMedia reads the phone's SDES key and RTP address from its SDP.
func phoneMedia(t *testing.T, sdp string) (key []byte, addr netip.AddrPort) {
	t.Helper()
	var ip string
	var port int
	for _, l := range strings.Split(sdp, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "c=IN IP4 "):
			ip = strings.TrimPrefix(l, "c=IN IP4 ")
		case strings.HasPrefix(l, "m=audio "):
			port, _ = strconv.Atoi(strings.Fields(l)[1])
		case strings.HasPrefix(l, "a=crypto:"):
			_, inline, ok := strings.Cut(l, "inline:")
			if !ok {
				t.Fatalf("phone a=crypto %q has no inline key", l)
			}
			inline, _, _ = strings.Cut(inline, "|")
			var err error
			if key, err = base64.StdEncoding.DecodeString(inline); err != nil || len(key) != 30 {
				t.Fatalf("phone key %q: %v (%d bytes), want 30 bytes", inline, err, len(key))
			}
		}
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || port == 0 || key == nil {
		t.Fatalf("phone SDP without address, port or key:\n%s", sdp)
	}
	return key, netip.AddrPortFrom(a, uint16(port))
}

// expectMedia reads from the socket until one RTP packet authenticates
// under the phone's key: the phone's media reaches this peer, encrypted.
func (p *srtpPeer) expectMedia(t *testing.T, phoneKey []byte) {
	t.Helper()
	ctx, err := srtp.CreateContext(phoneKey[:16], phoneKey[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatalf("srtp context: %v", err)
	}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := p.conn.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, err := p.conn.Read(buf)
		if err != nil {
			t.Fatalf("no SRTP from the phone: %v", err)
		}
		if n < 12 || (buf[1] >= 192 && buf[1] <= 223) {
			continue // RTCP (rtcp-mux)
		}
		var h rtp.Header
		if _, err := ctx.DecryptRTP(nil, buf[:n], &h); err == nil {
			return
		}
	}
}

// talk sends 20 ms SRTP packets to the phone until stop is called.
func (p *srtpPeer) talk(t *testing.T, to netip.AddrPort) (stop func()) {
	ctx, err := srtp.CreateContext(p.key[:16], p.key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatalf("srtp context: %v", err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 0x1234abcd}, Payload: make([]byte, 160)}
		dst := net.UDPAddrFromAddrPort(to)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			pkt.SequenceNumber, pkt.Timestamp = uint16(i), uint32(i*160)
			raw, err := pkt.Marshal()
			if err != nil {
				return
			}
			enc, err := ctx.EncryptRTP(nil, raw, nil)
			if err != nil {
				return
			}
			// A lost datagram is what UDP does; the test looks at the phone.
			_, _ = p.conn.WriteToUDP(enc, dst)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// callByID returns the phone's live calls with that Call-ID.
func callsByID(p *phone, id string) []*sip.Call {
	var out []*sip.Call
	for _, c := range p.acct.Calls() {
		if c.ID() == id {
			out = append(out, c)
		}
	}
	return out
}

// oneCall returns the phone's only live call with that Call-ID.
func oneCall(t *testing.T, p *phone, id string) *sip.Call {
	t.Helper()
	cs := callsByID(p, id)
	if len(cs) != 1 {
		t.Fatalf("phone has %d calls with Call-ID %s, want 1", len(cs), id)
	}
	return cs[0]
}

// hostilePhone starts a phone registered at the hostile registrar and
// returns it with its flow.
func hostilePhone(t *testing.T, e *env, pc phoneConf) (*phone, *test.HostileFlow) {
	t.Helper()
	if pc.user == "" {
		pc.user = "alice"
	}
	if pc.mediaSecurity == "" {
		pc.mediaSecurity = "sdes"
	}
	p := e.startPhone(t, pc, nil)
	f := e.hostile.Flow(t, 10*time.Second)
	p.waitRegistered(t)
	return p, f
}

// establish places a legitimate call from the hostile side: INVITE, 200,
// ACK, media secured both ways. It returns the phone's key and address.
func establish(t *testing.T, p *phone, c *hcall, peer *srtpPeer) (phoneKey []byte, phoneAddr netip.AddrPort) {
	t.Helper()
	res := c.invite(peer.offer())
	if res.Status() != 200 {
		t.Fatalf("legitimate INVITE answered %q, want 200", res.Start)
	}
	c.ack()
	p.waitEvent(t, sip.EventCallStarted, 10*time.Second)
	phoneKey, phoneAddr = phoneMedia(t, res.Body)
	peer.expectMedia(t, phoneKey)
	return phoneKey, phoneAddr
}

// boundPorts counts the UDP sockets bound in the phone's RTP range.
func boundPorts(t *testing.T, p *phone) int {
	t.Helper()
	n := 0
	for _, file := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			_, port, ok := strings.Cut(f[1], ":")
			if !ok {
				continue
			}
			v, err := strconv.ParseUint(port, 16, 16)
			if err == nil && uint16(v) >= p.cfg.Media.PortMin && uint16(v) <= p.cfg.Media.PortMax {
				n++
			}
		}
	}
	return n
}
