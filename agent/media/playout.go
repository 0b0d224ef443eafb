package media

// The playout clock: every 20 ms one frame leaves the jitter buffer for the
// sink, decoded, with gaps concealed (plc.go), converted to the sink's rate
// (resample.go) and measured (levels.go). The clock runs from Start to
// Close whether or not packets come, so a sink sees audio in real time:
// silence before the first packet and while the peer holds the call.

import (
	"time"

	"github.com/hardphone/hardphone/hal/audio"
)

// maxCatchUp is how many late ticks the playout loop makes up at once; a
// loop held up longer (a suspended process) skips the rest, which the
// jitter buffer sees as a delay to compress.
const maxCatchUp = 5

// rated is what a Source or Sink with a sample rate other than 8000 Hz
// implements (every hal/audio device, and WAV files).
type rated interface{ Rate() int }

// rateOf is a source's or sink's rate: its Rate, or G.711's 8000 Hz.
func rateOf(v any) int {
	if r, ok := v.(rated); ok && r.Rate() > 0 {
		return r.Rate()
	}
	return sampleRate
}

// ticksSince converts the time since the session's epoch to RTP ticks.
func (s *Session) ticksAt(t time.Time) int64 {
	return int64(t.Sub(s.epoch) * rtpClock / time.Second)
}

// playout runs the playout clock until Close: a frame every 20 ms, the
// phase moved to where the jitter buffer wants a new stream's first frame.
// A loop woken late makes up to maxCatchUp frames at once, each with its
// nominal time, and skips the rest.
func (s *Session) playout() {
	defer s.sending.Done()
	p := &player{s: s, jb: &s.jb}
	const frame = frameMillis * time.Millisecond
	next := time.Now().Add(frame)
	timer := time.NewTimer(frame)
	defer timer.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.jb.wake:
			if due, ok := s.jb.firstDue(); ok {
				next = s.epoch.Add(time.Duration(due) * time.Second / rtpClock)
			}
		case <-timer.C:
			now := time.Now()
			for n := 0; !next.After(now) && n < maxCatchUp; n++ {
				p.tick(s.ticksAt(next))
				next = next.Add(frame)
			}
			if !next.After(now) {
				next = now.Add(frame)
			}
		}
		timer.Reset(time.Until(next))
	}
}

// player turns buffered packets into frames. Only the playout goroutine
// touches it.
type player struct {
	s  *Session
	jb *jitterBuffer

	codec Codec // of dec, plc and fifo; meaningful once dec is set
	dec   decoder
	plc   *plc
	// fifo holds decoded samples from tick fifoStart on, and real says
	// which of them were decoded (true) and which are a gap to conceal.
	fifo      []int16
	real      []bool
	fifoStart int64
	gen       uint64

	pkts  []jbPacket
	pcm   []int16 // decode scratch
	frame []int16 // the frame being played, at the codec rate
	out   []int16 // the same at the sink's rate
	rs    *resampler
	rsIn  int
	rsOut int
	quiet bool
	// The sink's backlog: smallest in the current second, the second's
	// age, and whether the last second had too much (see trimSink).
	sinkMin    int
	sinkTicks  int
	sinkExcess bool
}

// tick plays the frame due at tick now.
func (p *player) tick(now int64) {
	act := p.jb.decide(now, p.quiet)
	if p.dec == nil && act != jbIdle {
		// The first packet is in: set up for its codec.
		p.setCodec(p.s.currentCodec())
	}
	p.frame = p.frame[:0]
	switch act {
	case jbIdle, jbStretch:
		p.frame = p.conceal(p.frame, p.frameLen())
	case jbPlay:
		p.fill(1)
		p.frame = p.emit(p.frame, p.frameLen())
	case jbCompress:
		p.fill(2)
		p.drop(p.frameLen())
		if p.plc != nil {
			p.plc.join()
		}
		p.frame = p.emit(p.frame, p.frameLen())
	}
	p.quiet = frameQuiet(p.frame)
	p.s.recvLevel.add(p.frame)
	box := p.s.sink.Load()
	if box == nil {
		return
	}
	out := p.toSink(box.sink, p.frame)
	if p.sinkExcess && p.quiet {
		// The sound device plays slower than our clock: leave out a quiet
		// frame rather than let its queue, and the delay, grow. The jitter
		// buffer's timeline is not touched: the drift is between our clock
		// and the device's, not the network's.
		p.sinkExcess = false
		p.s.st.sinkDropped.Add(1)
		return
	}
	if err := box.sink.WriteFrame(out); err != nil {
		p.s.rl.warn("sink", "audio sink write failed", "err", err)
	}
	p.watchSink(box.sink, len(out))
}

// watchSink notes the sink's backlog after a write; a second in which it
// never fell to three frames or less marks an excess for tick to trim.
func (p *player) watchSink(sink audio.Sink, frame int) {
	b, ok := sink.(backlogged)
	if !ok || frame == 0 {
		return
	}
	q := b.Buffered()
	if p.sinkTicks == 0 {
		p.sinkMin = q
	}
	p.sinkMin = min(p.sinkMin, q)
	p.sinkTicks++
	if p.sinkTicks >= 1000/frameMillis {
		p.sinkExcess = p.sinkMin > 3*frame
		p.sinkTicks = 0
	}
}

func (p *player) rate() int {
	if p.dec == nil {
		return p.s.currentCodec().Rate()
	}
	return p.codec.Rate()
}

// frameLen is one frame at the current rate (fill may change the codec).
func (p *player) frameLen() int { return frameMillis * p.rate() / 1000 }

// setCodec starts decoding codec afresh: a new decoder, concealment state
// and an empty fifo.
func (p *player) setCodec(c Codec) {
	p.codec, p.dec, p.plc = c, c.newDecoder(), newPLC(c.Rate())
	p.fifo, p.real = p.fifo[:0], p.real[:0]
}

// conceal appends n concealed samples (silence before any audio).
func (p *player) conceal(dst []int16, n int) []int16 {
	if p.plc == nil {
		return append(dst, make([]int16, n)...)
	}
	p.s.st.concealed.Add(1)
	return p.plc.conceal(dst, n)
}

// fill takes frames frames' worth of packets from the buffer, decodes them
// into the fifo, and marks what is missing as gaps.
func (p *player) fill(frames int) {
	pkts, from, gen := p.jb.take(frames, p.pkts[:0])
	p.pkts = pkts
	defer p.jb.recycle(pkts)
	spt := int64(p.codec.samplesPerTick())
	if gen != p.gen || from != p.fifoStart {
		// A new stream, or a jump: what the fifo held belongs elsewhere.
		p.gen, p.fifoStart = gen, from
		p.fifo, p.real = p.fifo[:0], p.real[:0]
	}
	end := func() int64 { return p.fifoStart + int64(len(p.fifo))/spt }
	for i := range pkts {
		pk := &pkts[i]
		if pk.codec != p.codec {
			// The codec changed (a re-offer): start the decoder afresh at
			// this packet.
			p.setCodec(pk.codec)
			spt = int64(p.codec.samplesPerTick())
			p.fifoStart = from
		}
		if e := end(); pk.ts > e {
			p.gap(int(pk.ts-e) * int(spt))
		}
		p.pcm = p.dec.decode(p.pcm[:0], pk.payload)
		skip := 0
		if e := end(); pk.ts < e {
			skip = min(int(e-pk.ts)*int(spt), len(p.pcm))
		}
		for _, v := range p.pcm[skip:] {
			p.fifo = append(p.fifo, v)
			p.real = append(p.real, true)
		}
	}
	if need := from + int64(frames)*frameTicks; end() < need {
		p.gap(int(need-end()) * int(spt))
	}
}

func (p *player) gap(n int) {
	for range n {
		p.fifo = append(p.fifo, 0)
		p.real = append(p.real, false)
	}
}

// emit plays the first n samples of the fifo, real ones through the
// concealment's recovery, gaps concealed.
func (p *player) emit(dst []int16, n int) []int16 {
	n = min(n, len(p.fifo))
	concealed := false
	for i := 0; i < n; {
		j := i
		for j < n && p.real[j] == p.real[i] {
			j++
		}
		if p.real[i] {
			start := len(dst)
			dst = append(dst, p.fifo[i:j]...)
			p.plc.good(dst[start:])
		} else {
			dst = p.plc.conceal(dst, j-i)
			concealed = true
		}
		i = j
	}
	if concealed {
		p.s.st.concealed.Add(1)
	}
	p.drop(n)
	return dst
}

// drop removes the first n samples of the fifo.
func (p *player) drop(n int) {
	n = min(n, len(p.fifo))
	copy(p.fifo, p.fifo[n:])
	copy(p.real, p.real[n:])
	p.fifo, p.real = p.fifo[:len(p.fifo)-n], p.real[:len(p.real)-n]
	p.fifoStart += int64(n / p.codec.samplesPerTick())
}

// toSink converts frame to the sink's rate.
func (p *player) toSink(sink audio.Sink, frame []int16) []int16 {
	in, out := p.rate(), rateOf(sink)
	if in != p.rsIn || out != p.rsOut {
		rs, err := newResampler(in, out)
		if err != nil {
			p.s.rl.warn("sink-rate", "audio sink rate unusable: playing nothing", "err", err)
			return nil
		}
		p.rs, p.rsIn, p.rsOut = rs, in, out
	}
	if p.rs == nil {
		return frame
	}
	p.out = p.rs.convert(p.out[:0], frame)
	return p.out
}
