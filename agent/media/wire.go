package media

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/pion/rtp"
)

// component names one of the two transport components of an RTP session
// (RFC 5764): RTP, and RTCP when it is not multiplexed.
type component int

const (
	compRTP component = iota
	compRTCP
)

func (c component) String() string {
	if c == compRTCP {
		return "rtcp"
	}
	return "rtp"
}

// wire is the only code in this package that writes to the media sockets,
// and it has exactly three ways to do it: an RTP packet sealed by an SRTP
// context, an RTCP packet sealed by an SRTP context, and a DTLS record. With
// no context there is no write, so no plaintext RTP or RTCP can leave the
// phone. TestOnlyWireWrites checks that nothing else calls a socket write.
type wire struct {
	socks [2]*net.UDPConn // by component; immutable; [compRTCP] may be nil
	st    *counters
}

// sendRTP seals hdr+payload with tx and sends it to the peer's RTP address.
func (w *wire) sendRTP(tx *srtpTx, to netip.AddrPort, hdr *rtp.Header, payload []byte) error {
	if tx == nil {
		return errNoKeys
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	pkt, err := tx.sealRTP(hdr, payload)
	if err != nil {
		return err
	}
	if _, err := w.socks[compRTP].WriteToUDPAddrPort(pkt, to); err != nil {
		return fmt.Errorf("send srtp to %s: %w", to, err)
	}
	w.st.packetsSent.Add(1)
	w.st.bytesSent.Add(uint64(len(pkt)))
	return nil
}

// sendRTCP seals a compound RTCP packet with tx and sends it from the
// component's socket (the RTP socket when rtcp-mux is in use).
func (w *wire) sendRTCP(tx *srtpTx, comp component, to netip.AddrPort, plain []byte) error {
	if tx == nil {
		return errNoKeys
	}
	sock := w.socks[comp]
	if sock == nil {
		return fmt.Errorf("no %s socket: %w", comp, errNoKeys)
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	pkt, err := tx.sealRTCP(plain)
	if err != nil {
		return err
	}
	if _, err := sock.WriteToUDPAddrPort(pkt, to); err != nil {
		return fmt.Errorf("send srtcp to %s: %w", to, err)
	}
	w.st.rtcpSent.Add(1)
	return nil
}

// sendDTLS sends one datagram of DTLS records. It refuses anything whose
// first byte is not a DTLS content type (RFC 7983 §7: 20..63), so the DTLS
// path cannot carry an RTP packet either.
func (w *wire) sendDTLS(comp component, to netip.AddrPort, b []byte) (int, error) {
	if len(b) == 0 || classify(b[0]) != classDTLS {
		return 0, errNotDTLS
	}
	sock := w.socks[comp]
	if sock == nil {
		return 0, fmt.Errorf("no %s socket for dtls", comp)
	}
	n, err := sock.WriteToUDPAddrPort(b, to)
	if err != nil {
		return n, fmt.Errorf("send dtls to %s: %w", to, err)
	}
	return n, nil
}

// packetClass is what the first byte of a datagram says it carries.
type packetClass int

const (
	classOther packetClass = iota
	classDTLS
	classRTP
)

// classify demultiplexes by the first byte (RFC 7983 §7): 0..3 STUN,
// 16..19 ZRTP, 20..63 DTLS, 64..79 TURN channels, 128..191 RTP and RTCP.
// Only DTLS and RTP/RTCP are ours; the rest is dropped.
func classify(b0 byte) packetClass {
	switch {
	case b0 >= 20 && b0 <= 63:
		return classDTLS
	case b0 >= 128 && b0 <= 191:
		return classRTP
	}
	return classOther
}

// isRTCP tells RTCP from RTP on a shared port by the second byte
// (RFC 5761 §4: RTCP packet types 192..223 fall where RTP payload types
// 64..95 with the marker bit would, and those payload types are not used).
func isRTCP(b []byte) bool {
	return len(b) >= 2 && b[1] >= 192 && b[1] <= 223
}
