package media

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/hardphone/hardphone/crypto/policy"
)

// rawPeer is a hand-driven SDES peer: a UDP socket, its own key and an
// SRTP context, so a test controls every byte a Session receives.
type rawPeer struct {
	t    *testing.T
	conn *net.UDPConn
	key  sdesKey
	tx   *srtpTx
	hdr  rtp.Header
	// b is the session's RTP address once answered.
	b netip.AddrPort
}

func suiteByName(t *testing.T, name string) policy.SRTPSuite {
	t.Helper()
	s, err := policy.SRTPSuiteBySDESName(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newRawPeer(t *testing.T) *rawPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	key, err := newSDESKey(suiteByName(t, "AES_CM_128_HMAC_SHA1_80"))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := newSRTPTx(key.Suite, key.Key, key.Salt)
	if err != nil {
		t.Fatal(err)
	}
	return &rawPeer{t: t, conn: conn, key: key, tx: tx,
		hdr: rtp.Header{Version: 2, SSRC: 0x11223344, SequenceNumber: 1000, Timestamp: 5000}}
}

func (p *rawPeer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// offer is an SDES offer from the peer; media lines are replaceable.
func (p *rawPeer) offer(proto string, mediaAttrs ...string) string {
	if mediaAttrs == nil {
		mediaAttrs = []string{"a=crypto:1 " + p.key.cryptoLine(1)[2:]}
	}
	lines := []string{
		"v=0", "o=peer 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
		fmt.Sprintf("m=audio %d %s 0 101", p.addr().Port(), proto),
		"a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15",
		"a=rtcp-mux", "a=sendrecv",
	}
	return strings.Join(append(lines, mediaAttrs...), "\r\n") + "\r\n"
}

// connect has s answer the peer's offer and start.
func (p *rawPeer) connect(s *Session) {
	p.t.Helper()
	if _, err := s.Answer([]byte(p.offer(protoSAVP))); err != nil {
		p.t.Fatalf("Answer: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		p.t.Fatalf("Start: %v", err)
	}
	p.b = s.LocalAddrs()[0]
}

// packet seals a PCMU frame as the next packet.
func (p *rawPeer) packet() []byte {
	p.t.Helper()
	p.tx.mu.Lock()
	defer p.tx.mu.Unlock()
	pkt, err := p.tx.sealRTP(&p.hdr, PCMU.encode(nil, make([]int16, frameSamples)))
	if err != nil {
		p.t.Fatal(err)
	}
	p.hdr.SequenceNumber++
	p.hdr.Timestamp += frameSamples
	return append([]byte(nil), pkt...)
}

func (p *rawPeer) send(b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, p.b); err != nil {
		p.t.Fatal(err)
	}
}

// udpSilent reports whether no datagram is queued on conn. Loopback
// delivery is synchronous, so once the sender's goroutines are gone any
// packet it sent is already here.
func udpSilent(t *testing.T, conn *net.UDPConn) (bool, []byte) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, _, err := conn.ReadFromUDP(buf)
	if err != nil {
		return true, nil
	}
	return false, buf[:n]
}

func b64(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
