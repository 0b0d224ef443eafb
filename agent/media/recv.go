package media

// The receive path: one loop per socket reads datagrams, demultiplexes
// DTLS, SRTP and SRTCP (RFC 7983), drops what the peer's SDP does not name,
// authenticates and replay-checks before anything is parsed further, and
// hands audio to the jitter buffer (the playout clock takes it from there,
// playout.go) and RFC 4733 events to the call.

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// receiver is the receive state of the RTP socket loop; only that
// goroutine touches it.
type receiver struct {
	hdr   rtp.Header
	plain []byte
	dtmf  dtmfReceiver
}

// readLoop reads one socket until Close.
func (s *Session) readLoop(c component) {
	defer s.loops.Done()
	sock := s.socks[c]
	buf := make([]byte, maxDatagram+1)
	plain := make([]byte, maxDatagram)
	var r *receiver
	if c == compRTP {
		r = &receiver{plain: make([]byte, maxDatagram)}
	}
	for {
		n, from, err := sock.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-s.done:
				return
			default:
			}
			s.rl.warn("read", "media socket read error", "component", c, "err", err)
			continue
		}
		if n == 0 || n > maxDatagram {
			s.st.malformed.Add(1)
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		s.handle(c, buf[:n], from, r, plain)
	}
}

// handle demultiplexes one datagram (RFC 7983) and drops what is not from
// the SDP peer.
func (s *Session) handle(c component, b []byte, from netip.AddrPort, r *receiver, plain []byte) {
	lp := s.live.Load()
	if lp != nil && lp.mux && c == compRTCP {
		// With rtcp-mux the RTCP port is not in use.
		s.st.foreignDropped.Add(1)
		return
	}
	if lp != nil && from != lp.peer[c] {
		s.st.foreignDropped.Add(1)
		s.rl.warn("foreign", "media packet from an address the sdp does not name", "from", from, "want", lp.peer[c])
		return
	}
	switch classify(b[0]) {
	case classDTLS:
		if s.dtls[c] == nil {
			s.st.malformed.Add(1)
			return
		}
		// Before the answer the peer is unknown: queue from anyone, and
		// let the association check the source once the SDP names it.
		s.dtls[c].deliver(b, from)
	case classRTP:
		if lp == nil {
			s.st.earlyDropped.Add(1)
			return
		}
		if isRTCP(b) {
			s.recvRTCP(c, b, plain)
			return
		}
		if r == nil {
			s.st.malformed.Add(1)
			return
		}
		s.recvRTP(lp, b, r)
	default:
		s.st.malformed.Add(1)
	}
}

// recvRTP authenticates, decrypts and plays one RTP packet.
func (s *Session) recvRTP(lp *liveParams, b []byte, r *receiver) {
	rx := s.rx[compRTP].Load()
	if rx == nil {
		s.st.earlyDropped.Add(1)
		return
	}
	pkt, err := rx.openRTP(r.plain[:0], b, &r.hdr)
	if err != nil {
		switch {
		case errors.Is(err, errAuth):
			s.st.authFailures.Add(1)
			s.rl.warn("auth", "srtp packet failed authentication: dropped", "err", err)
		case errors.Is(err, errReplay):
			s.st.replays.Add(1)
			s.rl.warn("replay", "srtp replay dropped", "err", err)
		default:
			s.st.malformed.Add(1)
		}
		return
	}
	s.st.packetsReceived.Add(1)
	s.st.bytesReceived.Add(uint64(len(b)))
	hl := r.hdr.MarshalSize()
	if hl > len(pkt) {
		s.st.malformed.Add(1)
		return
	}
	payload := pkt[hl:]
	if r.hdr.Padding {
		// RFC 3550 §5.1: the last octet counts the padding, itself included.
		if len(payload) == 0 || int(payload[len(payload)-1]) > len(payload) || payload[len(payload)-1] == 0 {
			s.st.malformed.Add(1)
			return
		}
		payload = payload[:len(payload)-int(payload[len(payload)-1])]
	}
	pt := r.hdr.PayloadType
	if lp.dtmf && (pt == lp.dtmfRecvPT || pt == lp.dtmfSendPT) {
		ev, err := parseDTMFPayload(payload)
		if err != nil {
			s.st.malformed.Add(1)
			return
		}
		if digit, ok := r.dtmf.handle(r.hdr.Timestamp, ev); ok {
			s.st.dtmfReceived.Add(1)
			select {
			case s.dtmfIn <- digit:
			default:
				s.rl.warn("dtmf", "dtmf digit dropped: nobody reads DTMF()")
			}
		}
		return
	}
	if pt != lp.recvPT && pt != lp.sendPT {
		s.st.malformed.Add(1)
		return
	}
	// A late or duplicate packet is counted by the buffer.
	s.jb.push(s.ticksAt(time.Now()), r.hdr.SSRC, r.hdr.SequenceNumber, r.hdr.Timestamp, lp.codec, payload)
}

// recvRTCP authenticates and reads one SRTCP packet. Anything that fails,
// plaintext RTCP included, is dropped and counted; the call goes on.
func (s *Session) recvRTCP(c component, b, plain []byte) {
	rx := s.rx[c].Load()
	if rx == nil {
		s.st.earlyDropped.Add(1)
		return
	}
	out, err := rx.openRTCP(plain[:0], b)
	if err != nil {
		s.st.rtcpDropped.Add(1)
		s.rl.warn("rtcp", "srtcp packet dropped", "err", err)
		return
	}
	s.st.rtcpReceived.Add(1)
	pkts, err := rtcp.Unmarshal(out)
	if err != nil {
		s.rl.warn("rtcp-parse", "authenticated rtcp does not parse", "err", err)
		return
	}
	for _, p := range pkts {
		if _, ok := p.(*rtcp.Goodbye); ok {
			s.log.Info("peer sent rtcp bye")
		}
	}
}
