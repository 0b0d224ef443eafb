package media

// The adaptive jitter buffer. Packets wait here between the receive loop
// and the playout clock (playout.go), which takes 20 ms of audio every
// 20 ms. Times are in RTP clock ticks (8000 per second for every codec we
// carry): a packet's transit is its arrival time minus its RTP timestamp,
// which is the network delay plus a constant offset between the clocks.
//
// How much delay to add. What matters is the spread of transits: a packet
// whose transit exceeds the fastest one's by more than the delay is late.
// The buffer keeps the last 128 transits (2.56 s) and takes the second
// largest above the smallest, about the 99th percentile: only one packet
// in a hundred is concealed, and a single outlier does not set the delay
// for the next 2.5 s. RFC 3550 §A.8's interarrival jitter J, a running mean
// (gain 1/16) of the change in transit between consecutive arrivals, is
// the floor: 2J. For jitter uniform over a width W, J tends to W/3 (more
// when packets overtake one another, since consecutive arrivals are then
// not consecutive packets), so 2J stays under the spread and the spread
// rules; J matters when the window is young, just after a stream starts or
// a burst of jitter begins, and it decays over a third of a second rather
// than all at once when the burst leaves the window. A few milliseconds of
// guard cover the scheduling of our own playout clock. The target is
// bounded to minPlayout..maxPlayout, and is at least warmPlayout for a
// stream's first second, before the window has seen enough to go by.
//
// How the delay moves. The playout point advances one frame per tick; the
// delay D is (tick time - playout point) - smallest transit. When D falls
// more than half a frame below the target the player stretches (plays one
// concealment frame without advancing); when it rises five eighths of a
// frame above, it compresses (drops a frame), so D settles within about a
// quarter frame of the target and a step one way never triggers one back. Both prefer quiet frames, where the change is
// inaudible, and act regardless once the error is large. So the delay
// grows within a tick of packets coming late, and shrinks within a second
// or two of the network calming down. Clock drift between the peer's
// sender and our playout clock shows up as the smallest transit drifting,
// and is absorbed the same way.
//
// Bounds: at most maxJBPackets packets wait (a hostile peer sending faster
// than real time fills it and the rest are dropped and counted), each a
// copy of at most maxDatagram bytes; a packet more than a second ahead of
// the playout point, or more than two behind, starts the stream afresh
// rather than waiting or being replayed; four late packets in a row do the
// same, which follows a sender whose timestamps stood still while it was
// paused.

import (
	"math"
	"sync"
)

const (
	// maxJBPackets bounds the packets waiting: 1.28 s of 20 ms packets,
	// beyond maxPlayout.
	maxJBPackets = 64
	// minPlayout and maxPlayout bound the target delay, in ticks. A frame's
	// worth at least: below it, a desktop busy with other work holds up
	// the sender or us often enough to make packets late on a quiet LAN.
	minPlayout = 20 * rtpClock / 1000
	maxPlayout = 400 * rtpClock / 1000
	// playoutGuard is added to the jitter estimate: our own clock's
	// scheduling and the peer's.
	playoutGuard = 5 * rtpClock / 1000
	// warmPlayout is the least delay of a stream's first warmPackets
	// packets (a second), before the transit window says anything.
	warmPlayout = 40 * rtpClock / 1000
	warmPackets = 50
	// jitterWindow is how many packets the smallest and largest transit
	// are taken over.
	jitterWindow = 128
	// resetAhead and resetBehind: a packet this far from the playout
	// point starts a new stream.
	resetAhead  = rtpClock
	resetBehind = 2 * rtpClock
	// lateReset is how many late packets in a row start a new stream.
	lateReset = 4
	// forceAdjust is the delay error, in ticks, beyond which stretching
	// and compressing no longer wait for a quiet frame.
	forceAdjust = 3 * frameTicks
)

// jbPacket is one audio packet in the buffer.
type jbPacket struct {
	ts      int64 // extended RTP timestamp
	codec   Codec
	payload []byte // owned by the buffer; returned to it with recycle
}

// end is the tick after the packet's last sample.
func (p *jbPacket) end() int64 { return p.ts + int64(p.codec.ticks(len(p.payload))) }

// jbAction is what the player does on a tick.
type jbAction int

const (
	jbIdle     jbAction = iota // nothing received yet: play silence
	jbPlay                     // play the next frame
	jbStretch                  // play a concealment frame, do not advance
	jbCompress                 // drop the next frame, play the one after
)

// jitterBuffer is shared by the RTP receive loop (push) and the playout
// loop (decide, take); mu guards every field.
type jitterBuffer struct {
	mu sync.Mutex

	started bool // a stream is in the buffer (until the next reset)
	ssrc    uint32
	lastTS  uint32 // last RTP timestamp seen, for extending
	extTS   int64  // its extended value
	// Sequence numbers, RFC 3550 §A.1 and §A.3: the highest extended one,
	// the first, and how many packets arrived, for the loss count.
	maxSeq   uint16
	cycles   int64
	baseSeq  int64
	received int64
	lostPrev int64 // losses of streams before a reset

	pkts []jbPacket // sorted by ts, none ending at or before cut
	free [][]byte   // recycled payload buffers

	// RFC 3550 §A.8 interarrival jitter, in ticks, and the last transit.
	jitter      float64
	prevTransit int64
	haveTransit bool
	// transits of the last jitterWindow packets (ring), for the smallest
	// (base) and the spread.
	transits [jitterWindow]int64
	nTransit int
	iTransit int
	base     int64
	spread   int64

	playing bool   // a packet of this stream is in: decide plays
	primed  bool   // the playout point is set: pos and cut are valid
	pos     int64  // extended timestamp of the next frame to play
	cut     int64  // ticks before this are decided (played or concealed)
	lateRun int    // late packets in a row
	gen     uint64 // counts resets: positions of different generations do not compare
	// due is when the first frame of the stream plays; duePending says the
	// playout clock has not taken it yet (firstDue). wake (capacity 1, may
	// be nil) tells the playout loop.
	due        int64
	duePending bool
	wake       chan struct{}

	st jbStats
}

// jbStats are the buffer's counters, reported in Stats.
type jbStats struct {
	late, overflow, resets uint64
	stretched, compressed  uint64
	delay, target          float64 // at the last tick, in ms
}

// push adds an audio packet that arrived at tick now. late reports one that
// came after its turn, or twice; it is dropped.
func (j *jitterBuffer) push(now int64, ssrc uint32, seq uint16, ts uint32, codec Codec, payload []byte) (late bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(payload) == 0 {
		return false
	}
	if !j.started || ssrc != j.ssrc {
		j.reset(ssrc, seq, ts)
	}
	ext := j.extTS + int64(int32(ts-j.lastTS))
	if j.primed && (ext-j.cut > resetAhead || j.cut-ext > resetBehind) {
		j.reset(ssrc, seq, ts)
		ext = j.extTS
	}
	if j.primed && ext+int64(codec.ticks(len(payload))) <= j.cut {
		j.st.late++
		j.lateRun++
		if j.lateRun < lateReset {
			j.arrived(now, seq, ext)
			return true
		}
		// The sender's timeline moved (a pause with its timestamps held,
		// or a long delay spike): follow it from this packet on.
		j.reset(ssrc, seq, ts)
		ext = j.extTS
	}
	j.lateRun = 0
	if ext > j.extTS {
		j.lastTS, j.extTS = ts, ext
	}
	j.arrived(now, seq, ext)
	if !j.playing {
		// The first packet of a stream: it plays at now+target, where the
		// delay D equals the target, and the playout clock is told to move
		// its phase there (so a frame is one packet, not the end of one and
		// the start of the next, which would need the next a frame early).
		j.playing, j.primed = true, true
		j.pos, j.cut = ext, ext
		j.due = now + j.targetLocked()
		j.duePending = true
		if j.wake != nil {
			select {
			case j.wake <- struct{}{}:
			default:
			}
		}
	}
	return j.insert(jbPacket{ts: ext, codec: codec}, payload)
}

// arrived counts a packet and updates the jitter estimate and the transit
// window.
func (j *jitterBuffer) arrived(now int64, seq uint16, ext int64) {
	j.countSeq(seq)
	// RFC 3550 §A.8: J += (|D(i-1,i)| - J) / 16.
	transit := now - ext
	if j.haveTransit {
		d := transit - j.prevTransit
		if d < 0 {
			d = -d
		}
		j.jitter += (float64(d) - j.jitter) / 16
	}
	j.prevTransit, j.haveTransit = transit, true
	j.addTransit(transit)
}

// insert puts p in ts order, copying payload; a duplicate is late.
func (j *jitterBuffer) insert(p jbPacket, payload []byte) bool {
	i := len(j.pkts)
	for i > 0 && j.pkts[i-1].ts >= p.ts {
		i--
	}
	if i < len(j.pkts) && j.pkts[i].ts == p.ts {
		j.st.late++
		return true
	}
	if len(j.pkts) >= maxJBPackets {
		j.st.overflow++
		return false
	}
	var buf []byte
	if n := len(j.free); n > 0 {
		buf, j.free = j.free[n-1][:0], j.free[:n-1]
	}
	p.payload = append(buf, payload...)
	j.pkts = append(j.pkts, jbPacket{})
	copy(j.pkts[i+1:], j.pkts[i:])
	j.pkts[i] = p
	return false
}

// reset forgets the stream: a new SSRC, a timestamp jump, or a sender
// whose timeline moved. The jitter estimate is kept (it describes the
// network, not the stream); the transit window is not.
func (j *jitterBuffer) reset(ssrc uint32, seq uint16, ts uint32) {
	if j.started {
		j.st.resets++
		j.lostPrev += j.lostLocked()
	}
	for i := range j.pkts {
		j.free = append(j.free, j.pkts[i].payload)
	}
	j.pkts = j.pkts[:0]
	j.started, j.ssrc, j.lastTS, j.extTS = true, ssrc, ts, int64(ts)
	j.maxSeq, j.cycles, j.baseSeq, j.received = seq-1, 0, int64(seq), 0
	j.nTransit, j.iTransit, j.haveTransit = 0, 0, false
	j.playing, j.primed, j.lateRun = false, false, 0
	j.gen++
}

// countSeq extends the sequence number (RFC 3550 §A.1, without the
// probation) and counts the packet.
func (j *jitterBuffer) countSeq(seq uint16) {
	j.received++
	if d := seqDiff(seq, j.maxSeq); d > 0 {
		if seq < j.maxSeq {
			j.cycles += 1 << 16
		}
		j.maxSeq = seq
	}
}

// lostLocked is RFC 3550 §A.3's cumulative loss: expected minus received,
// where duplicates may make it negative (reported as 0).
func (j *jitterBuffer) lostLocked() int64 {
	if !j.started {
		return 0
	}
	expected := j.cycles + int64(j.maxSeq) - j.baseSeq + 1
	return max(expected-j.received, 0)
}

// seqDiff is a-b as a signed distance in sequence space.
func seqDiff(a, b uint16) int { return int(int16(a - b)) }

func (j *jitterBuffer) addTransit(t int64) {
	j.transits[j.iTransit] = t
	j.iTransit = (j.iTransit + 1) % jitterWindow
	j.nTransit = min(j.nTransit+1, jitterWindow)
	// The smallest transit, and the second largest: one outlier (a single
	// packet held up by a burst of cross traffic) does not set the delay
	// for the next 2.5 s.
	lo, hi1, hi2 := t, int64(math.MinInt64), int64(math.MinInt64)
	for _, v := range j.transits[:j.nTransit] {
		lo = min(lo, v)
		if v > hi1 {
			hi1, hi2 = v, hi1
		} else if v > hi2 {
			hi2 = v
		}
	}
	if j.nTransit < 2 {
		hi2 = hi1
	}
	j.base, j.spread = lo, hi2-lo
}

// targetLocked is the delay the buffer aims for, in ticks.
func (j *jitterBuffer) targetLocked() int64 {
	t := max(int64(2*j.jitter), j.spread) + playoutGuard
	if j.nTransit < warmPackets {
		// Too few packets yet to know the network: start at a delay that
		// covers ordinary jitter and come down once it shows it can.
		t = max(t, warmPlayout)
	}
	return min(max(t, minPlayout), maxPlayout)
}

// decide chooses what the tick at time now does. quiet says the last frame
// played was quiet enough to stretch or compress unheard.
func (j *jitterBuffer) decide(now int64, quiet bool) jbAction {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.playing {
		return jbIdle
	}
	target := j.targetLocked()
	if now < j.due {
		return jbIdle
	}
	d := now - j.pos - j.base
	j.st.delay, j.st.target = ticksMS(d), ticksMS(target)
	switch {
	case target-d > frameTicks/2 && (quiet || target-d > forceAdjust/3):
		j.st.stretched++
		return jbStretch
	case d-target > frameTicks*5/8 && (quiet || d-target > forceAdjust || d > maxPlayout):
		j.st.compressed++
		return jbCompress
	}
	return jbPlay
}

// firstDue returns, once per stream, the tick at which its first frame
// plays, for the playout clock to move its phase to.
func (j *jitterBuffer) firstDue() (int64, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	ok := j.duePending
	j.duePending = false
	return j.due, ok
}

// take moves the playout point on by frames frames. It returns the packets
// that start before the new decision point, in order (the caller gives
// their payloads back with recycle), the playout point before the move,
// and the stream generation, which changes when the buffer starts afresh.
func (j *jitterBuffer) take(frames int, out []jbPacket) (pkts []jbPacket, from int64, gen uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	from = j.pos
	j.pos += int64(frames) * frameTicks
	limit := max(j.cut, j.pos)
	n := 0
	for n < len(j.pkts) && j.pkts[n].ts < limit {
		n++
	}
	out = append(out, j.pkts[:n]...)
	copy(j.pkts, j.pkts[n:])
	j.pkts = j.pkts[:len(j.pkts)-n]
	for i := range out {
		j.cut = max(j.cut, out[i].end())
	}
	j.cut = max(j.cut, j.pos)
	return out, from, j.gen
}

// recycle returns payload buffers handed out by take.
func (j *jitterBuffer) recycle(ps []jbPacket) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i := range ps {
		if len(j.free) < maxJBPackets {
			j.free = append(j.free, ps[i].payload)
		}
		ps[i].payload = nil
	}
}

// snapshot fills the buffer's part of Stats.
func (j *jitterBuffer) snapshot(st *Stats) {
	j.mu.Lock()
	defer j.mu.Unlock()
	st.LateDropped = j.st.late
	st.JitterBufferOverflow = j.st.overflow
	st.StreamResets = j.st.resets
	st.Stretched = j.st.stretched
	st.Compressed = j.st.compressed
	st.JitterMS = j.jitter * 1000 / rtpClock
	st.PlayoutDelayMS = j.st.delay
	st.PlayoutTargetMS = j.st.target
	st.PacketsLost = uint64(j.lostPrev + j.lostLocked())
}

func ticksMS(t int64) float64 { return float64(t) * 1000 / rtpClock }
