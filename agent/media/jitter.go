package media

// jitterDepth is how many packets wait before the oldest is played: 3
// frames (60 ms) absorbs reordering on a LAN or a good uplink without
// making the call feel late.
const (
	jitterDepth = 3
	// maxConceal is the longest gap filled with silence; a longer one (a
	// sender that paused) just moves on.
	maxConceal = 5
	// resetJump is a sequence jump treated as a new stream, not loss.
	resetJump = 1000
)

// jbPacket is one audio packet in the buffer; a nil payload is a lost
// frame to conceal.
type jbPacket struct {
	seq     uint16
	codec   Codec
	payload []byte
}

// jitterBuffer reorders audio packets by RTP sequence number (RFC 3550
// §A.1 arithmetic, modulo 2^16) and releases them in order once more than
// jitterDepth are waiting. It belongs to the RTP socket goroutine.
type jitterBuffer struct {
	started bool
	ssrc    uint32
	next    uint16     // sequence number of the next packet to release
	pending []jbPacket // sorted by distance from next
}

// seqDiff is a-b as a signed distance in sequence space.
func seqDiff(a, b uint16) int { return int(int16(a - b)) }

// push adds p and appends to out what is now due, in order. late reports
// a packet that arrived after its turn or twice; it is dropped.
func (j *jitterBuffer) push(ssrc uint32, p jbPacket, out []jbPacket) (due []jbPacket, late bool) {
	if !j.started || ssrc != j.ssrc || seqDiff(p.seq, j.next) > resetJump || seqDiff(p.seq, j.next) < -resetJump {
		out = j.flush(out)
		j.started, j.ssrc, j.next = true, ssrc, p.seq
	}
	d := seqDiff(p.seq, j.next)
	if d < 0 {
		return out, true
	}
	i := 0
	for ; i < len(j.pending); i++ {
		pd := seqDiff(j.pending[i].seq, j.next)
		if pd == d {
			return out, true
		}
		if pd > d {
			break
		}
	}
	p.payload = append([]byte(nil), p.payload...)
	j.pending = append(j.pending, jbPacket{})
	copy(j.pending[i+1:], j.pending[i:])
	j.pending[i] = p
	for len(j.pending) > jitterDepth {
		out = j.release(out)
	}
	return out, false
}

// release pops the oldest packet, concealing a short gap before it.
func (j *jitterBuffer) release(out []jbPacket) []jbPacket {
	first := j.pending[0]
	j.pending = j.pending[1:]
	if gap := seqDiff(first.seq, j.next); gap > 0 && gap <= maxConceal {
		for k := 0; k < gap; k++ {
			out = append(out, jbPacket{seq: j.next + uint16(k), codec: first.codec})
		}
	}
	out = append(out, first)
	j.next = first.seq + 1
	return out
}

// flush releases everything waiting.
func (j *jitterBuffer) flush(out []jbPacket) []jbPacket {
	for len(j.pending) > 0 {
		out = j.release(out)
	}
	return out
}
