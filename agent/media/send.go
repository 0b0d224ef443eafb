package media

// The send path: one ticker per session seals 20 ms audio frames, RFC 4733
// events and RTCP reports, and writes them only through wire.go's sealed
// writers.

import (
	"errors"
	"io"
	"time"

	"github.com/pion/rtp"
)

// rtcpEveryFrames is rtcpInterval in 20 ms ticks. The first report goes
// out after rtcpFirstFrames (1 s): RFC 3550 §6.2 lets the first one come
// early, and a second gives the peer time to finish its own keying, so the
// report is not dropped as early traffic.
const (
	rtcpEveryFrames = int(rtcpInterval / (frameMillis * time.Millisecond))
	rtcpFirstFrames = 50
)

// sender is the send loop's state: one SSRC, its sequence number and
// timestamp (random starts, RFC 3550 §5.1), and the DTMF event in progress.
// Only the send loop touches it, and Close after the loop has ended.
type sender struct {
	s       *Session
	hdr     rtp.Header
	seq     uint16
	ts      uint32
	marker  bool
	frame   [frameSamples]int16
	payload []byte

	// DTMF in progress: ev.frames == 0 when none.
	ev        dtmfTone
	evTS      uint32
	evFrames  int
	evEndSent int
	gap       int

	ticks     int
	rtcpDue   int
	rtcpFirst bool
	packets   uint32
	octets    uint32
	srcDone   bool
	srcInUse  *sourceBox
}

func newSender(s *Session) *sender {
	r := randUint64()
	return &sender{
		s:       s,
		hdr:     rtp.Header{Version: 2, SSRC: uint32(r)},
		seq:     uint16(r >> 32),
		ts:      uint32(randUint64()),
		marker:  true,
		payload: make([]byte, 0, maxDatagram),
	}
}

// run paces the stream at one packet per 20 ms until Close.
func (p *sender) run() {
	defer p.s.sending.Done()
	t := time.NewTicker(frameMillis * time.Millisecond)
	defer t.Stop()
	p.tick()
	for {
		select {
		case <-p.s.done:
			return
		case <-t.C:
			p.tick()
		}
	}
}

func (p *sender) tick() {
	s := p.s
	lp := s.live.Load()
	tx := s.tx[compRTP].Load()
	switch {
	case !lp.send:
		// On hold (or held): no audio, no events, and the next packet after
		// resuming starts a talkspurt.
		p.marker = true
		p.ev = dtmfTone{}
	case p.ev.frames > 0 || p.startEvent(lp):
		p.sendEvent(lp, tx)
	default:
		p.sendAudio(lp, tx)
	}
	p.ts += frameSamples
	p.ticks++
	p.sendReport(lp)
}

// startEvent takes the next queued digit when the gap after the last one
// is over.
func (p *sender) startEvent(lp *liveParams) bool {
	if p.gap > 0 {
		p.gap--
		return false
	}
	if !lp.dtmf {
		return false
	}
	select {
	case ev := <-p.s.dtmfOut:
		p.ev, p.evTS, p.evFrames, p.evEndSent = ev, p.ts, 0, 0
		return true
	default:
		return false
	}
}

// sendEvent sends the next packet of the event in progress (RFC 4733
// §2.5.1): every packet carries the event's start timestamp and the
// duration so far; the first has the marker bit; the end packet goes out
// three times.
func (p *sender) sendEvent(lp *liveParams, tx *srtpTx) {
	pl := dtmfPayload{Event: p.ev.event, Volume: dtmfVolume}
	first := p.evFrames == 0
	if p.evFrames < p.ev.frames {
		p.evFrames++
	}
	pl.Duration = uint16(p.evFrames * frameSamples)
	if p.evFrames == p.ev.frames {
		pl.End = true
		p.evEndSent++
	}
	p.hdr.PayloadType = lp.dtmfSendPT
	p.hdr.Marker = first
	p.hdr.Timestamp = p.evTS
	p.send(lp, tx, pl.marshal(p.payload[:0]))
	if p.evEndSent == dtmfEndCopies {
		p.s.st.dtmfSent.Add(1)
		p.ev, p.gap = dtmfTone{}, dtmfGapFrames
	}
}

// sendAudio reads one frame from the source (silence when there is none or
// it has ended) and sends it.
func (p *sender) sendAudio(lp *liveParams, tx *srtpTx) {
	box := p.s.src.Load()
	if box != p.srcInUse {
		p.srcInUse, p.srcDone = box, false
	}
	pcm := p.frame[:]
	clear(pcm)
	if box != nil && !p.srcDone {
		n, err := box.src.ReadFrame(pcm)
		if n < 0 || n > len(pcm) {
			n = 0
		}
		clear(pcm[n:])
		if err != nil {
			p.srcDone = true
			if !errors.Is(err, io.EOF) {
				p.s.rl.warn("source", "audio source failed: sending silence", "err", err)
			}
		}
	}
	p.hdr.PayloadType = lp.sendPT
	p.hdr.Marker = p.marker
	p.hdr.Timestamp = p.ts
	p.marker = false
	p.send(lp, tx, lp.codec.encode(p.payload[:0], pcm))
}

func (p *sender) send(lp *liveParams, tx *srtpTx, payload []byte) {
	p.hdr.SequenceNumber = p.seq
	if err := p.s.w.sendRTP(tx, lp.peer[compRTP], &p.hdr, payload); err != nil {
		p.s.rl.warn("send", "srtp send failed", "err", err)
		return
	}
	p.seq++
	p.packets++
	p.octets += uint32(len(payload))
}

// sendReport sends an SRTCP sender report once SRTCP keys exist and a
// second has passed, then every rtcpInterval.
func (p *sender) sendReport(lp *liveParams) {
	if p.ticks < rtcpFirstFrames || (p.rtcpFirst && p.ticks < p.rtcpDue) {
		return
	}
	if p.report(lp, false) {
		p.rtcpFirst, p.rtcpDue = true, p.ticks+rtcpEveryFrames
	}
}

func (p *sender) report(lp *liveParams, bye bool) bool {
	c := compRTCP
	if lp.mux {
		c = compRTP
	}
	tx := p.s.tx[compRTCP].Load()
	if tx == nil {
		return false
	}
	pkt, err := senderReport(p.hdr.SSRC, p.ts, p.packets, p.octets, p.s.cname, bye)
	if err != nil {
		p.s.rl.warn("rtcp-build", "build rtcp report", "err", err)
		return false
	}
	if err := p.s.w.sendRTCP(tx, c, lp.peer[compRTCP], pkt); err != nil {
		p.s.rl.warn("rtcp-send", "srtcp send failed", "err", err)
		return false
	}
	return true
}

// bye sends the closing SR+SDES+BYE (RFC 3550 §6.6). Close calls it after
// the send loop has stopped.
func (p *sender) bye() {
	if lp := p.s.live.Load(); lp != nil {
		p.report(lp, true)
	}
}
