package media

// The send path: one ticker per session seals 20 ms audio frames, RFC 4733
// events and RTCP reports, and writes them only through wire.go's sealed
// writers.

import (
	"errors"
	"io"
	"time"

	"github.com/pion/rtp"

	"github.com/hardphone/hardphone/hal/audio"
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
	payload []byte

	// The audio path: a frame at the source's rate, converted to the
	// codec's (rs nil when they match), encoded by enc.
	frame    []int16
	inRate   int // rate of frame
	conv     []int16
	rs       *resampler
	rsIn     int
	rsOut    int
	enc      encoder
	encCodec Codec

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
	// srcFresh asks the next read to drain what the source queued before
	// the call started sending (it rang, or was on hold); backlogMin is the
	// smallest backlog seen in the current second, backlogTicks its age.
	srcFresh     bool
	stalled      bool // the source returned audio.ErrStalled and has not delivered since
	backlogMin   int
	backlogTicks int
}

// backlogged is what a Source with a queue in front of it implements
// (hal/audio's PulseSource): how many captured samples wait.
type backlogged interface{ Buffered() int }

// maxDrainFrames bounds how many frames one drain reads and throws away:
// a PulseSource's whole queue (250 frames at most).
const maxDrainFrames = 256

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

// run sends one packet per 20 ms until Close. A live sound device (a
// Source with a queue in front of it, see backlogged) paces the stream
// itself: the loop waits for its next frame, so the packets follow the
// device's clock and no frame is skipped or sent late because a timer
// fired while the device had not delivered yet. Without one (a file, no
// source, hold, a source that failed) a timer paces it.
func (p *sender) run() {
	defer p.s.sending.Done()
	const frame = frameMillis * time.Millisecond
	timer := time.NewTimer(frame)
	defer timer.Stop()
	p.tick(nil)
	next := time.Now().Add(frame)
	for {
		select {
		case <-p.s.done:
			return
		default:
		}
		if box := p.liveSource(); box != nil {
			start := time.Now()
			pcm := p.readSource(box)
			if p.stalled {
				// The device gave nothing for its read timeout: keep the
				// timestamps to real time across the wait, and send silence
				// on the timer until it delivers again.
				for d := time.Since(start); d >= frame; d -= frame {
					p.ts += frameTicks
				}
				p.marker = true
			}
			p.tick(pcm)
			next = time.Now().Add(frame)
			continue
		}
		timer.Reset(time.Until(next))
		select {
		case <-p.s.done:
			return
		case <-timer.C:
		}
		// Make up frames a busy machine held us past, so the timestamps keep
		// to real time; beyond maxCatchUp, skip them (the timestamps jump,
		// and the next packet starts a talkspurt).
		now := time.Now()
		for n := 0; !next.After(now) && n < maxCatchUp; n++ {
			p.tick(nil)
			next = next.Add(frame)
		}
		for !next.After(now) {
			p.ts += frameTicks
			p.marker = true
			next = next.Add(frame)
		}
	}
}

// liveSource returns the source when it is a live device the send loop
// should wait on: audio is being sent and the source has not failed.
func (p *sender) liveSource() *sourceBox {
	lp := p.s.live.Load()
	box := p.s.src.Load()
	if lp == nil || !lp.send || box == nil {
		return nil
	}
	if box != p.srcInUse {
		p.srcInUse, p.srcDone, p.srcFresh, p.stalled = box, false, true, false
	}
	b, ok := box.src.(backlogged)
	if !ok || p.srcDone {
		return nil
	}
	if p.stalled {
		if b.Buffered() < rateOf(box.src)*frameMillis/1000 {
			return nil
		}
		p.stalled = false
		p.s.log.Info("audio source delivers again")
	}
	return box
}

// tick sends what is due: an event packet, or audio (live, when a live
// device delivered it; else read now), and RTCP.
func (p *sender) tick(live []int16) {
	s := p.s
	lp := s.live.Load()
	tx := s.tx[compRTP].Load()
	switch {
	case !lp.send:
		// On hold (or held): no audio, no events, and the next packet after
		// resuming starts a talkspurt with what the microphone hears then,
		// not what it queued meanwhile.
		p.marker = true
		p.ev = dtmfTone{}
		p.srcFresh = true
	case p.ev.frames > 0 || p.startEvent(lp):
		p.sendEvent(lp, tx)
	default:
		p.sendAudio(lp, tx, live)
	}
	p.ts += frameTicks
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
	pl.Duration = uint16(p.evFrames * frameTicks)
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

// sendAudio sends one frame: live if a live device delivered it, else read
// from the source now (silence when there is none or it has ended); muted,
// silence instead. It is converted to the codec's rate first.
func (p *sender) sendAudio(lp *liveParams, tx *srtpTx, live []int16) {
	pcm := live
	if pcm == nil {
		pcm = p.readSource(p.s.src.Load())
	}
	if p.s.muted.Load() {
		// The source was read all the same: a microphone's queue must not
		// hold what was said while muted.
		clear(pcm)
	}
	p.s.sendLevel.add(pcm)
	pcm = p.toCodec(pcm, p.inRate, lp.codec.Rate())
	if p.enc == nil || p.encCodec != lp.codec {
		p.enc, p.encCodec = lp.codec.newEncoder(), lp.codec
	}
	p.hdr.PayloadType = lp.sendPT
	p.hdr.Marker = p.marker
	p.hdr.Timestamp = p.ts
	p.marker = false
	p.send(lp, tx, p.enc.encode(p.payload[:0], pcm))
}

// readSource reads one 20 ms frame at the source's rate (p.inRate), or
// returns silence at 8 kHz when there is no source or it has ended.
func (p *sender) readSource(box *sourceBox) []int16 {
	if box != p.srcInUse {
		p.srcInUse, p.srcDone, p.srcFresh, p.stalled = box, false, true, false
	}
	p.inRate = sampleRate
	if box != nil {
		p.inRate = rateOf(box.src)
	}
	n := p.inRate * frameMillis / 1000
	if cap(p.frame) < n {
		p.frame = make([]int16, n)
	}
	pcm := p.frame[:n]
	clear(pcm)
	if box == nil || p.srcDone || p.stalled {
		return pcm
	}
	p.trimBacklog(box.src, pcm)
	got, err := box.src.ReadFrame(pcm)
	if got < 0 || got > len(pcm) {
		got = 0
	}
	clear(pcm[got:])
	switch {
	case err == nil:
	case errors.Is(err, audio.ErrStalled):
		// A suspended or starved device may come back: wait for it on the
		// timer (liveSource), sending silence meanwhile.
		p.stalled = true
		p.s.rl.warn("source-stall", "audio source delivers nothing: sending silence until it does", "err", err)
	default:
		p.srcDone = true
		if !errors.Is(err, io.EOF) {
			p.s.rl.warn("source", "audio source failed: sending silence", "err", err)
		}
	}
	return pcm
}

// trimBacklog keeps the delay between microphone and wire short. A device
// opened before the call was answered has queued what it heard while the
// call rang; a device whose clock runs slower than ours leaves more and
// more waiting. Neither should be sent late: at the start (and after hold)
// everything queued beyond one frame is dropped, and whenever a whole
// second passes with more than two frames always waiting, one frame is.
// buf is scratch of one frame.
func (p *sender) trimBacklog(src interface{ ReadFrame([]int16) (int, error) }, buf []int16) {
	b, ok := src.(backlogged)
	if !ok {
		return
	}
	n := len(buf)
	drop := 0
	switch q := b.Buffered(); {
	case p.srcFresh:
		drop = (q - n) / n
		p.srcFresh, p.backlogMin, p.backlogTicks = false, q, 0
	default:
		p.backlogMin = min(p.backlogMin, q)
		p.backlogTicks++
		if p.backlogTicks >= 1000/frameMillis {
			if p.backlogMin > 2*n {
				drop = 1
			}
			p.backlogMin, p.backlogTicks = q, 0
		}
	}
	for i := 0; i < min(drop, maxDrainFrames); i++ {
		if _, err := src.ReadFrame(buf); err != nil {
			return
		}
		p.s.st.sourceDropped.Add(1)
	}
}

// toCodec converts a frame from the source's rate to the codec's.
func (p *sender) toCodec(pcm []int16, in, out int) []int16 {
	if in != p.rsIn || out != p.rsOut {
		rs, err := newResampler(in, out)
		if err != nil {
			p.s.rl.warn("source-rate", "audio source rate unusable: sending silence", "err", err)
			p.conv = append(p.conv[:0], make([]int16, out*frameMillis/1000)...)
			return p.conv
		}
		p.rs, p.rsIn, p.rsOut = rs, in, out
	}
	if p.rs == nil {
		return pcm
	}
	p.conv = p.rs.convert(p.conv[:0], pcm)
	return p.conv
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
