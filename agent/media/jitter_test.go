package media

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// jbArrival is one packet reaching the buffer in a simulation.
type jbArrival struct {
	at   int64 // arrival, ticks
	seq  uint16
	ts   uint32
	ssrc uint32
}

// jbSim plays the role of the player against a jitter buffer: at every
// tick (every frameTicks from start) it pushes what has arrived, asks
// decide, and takes what the action consumes, recording the order of the
// timestamps it got.
type jbSim struct {
	jb                   jitterBuffer
	got                  []int64 // ts of the packets taken, in order
	stretched, compress  int
	delays               []float64 // D at each tick, ms
	lateTotal, overflows uint64
}

func (s *jbSim) run(arr []jbArrival, start, end int64) {
	sort.SliceStable(arr, func(a, b int) bool { return arr[a].at < arr[b].at })
	i := 0
	var pkts []jbPacket
	for now := start; now < end; now += frameTicks {
		for i < len(arr) && arr[i].at <= now {
			a := arr[i]
			s.jb.push(a.at, a.ssrc, a.seq, a.ts, PCMU, make([]byte, frameTicks))
			i++
			if due, ok := s.jb.firstDue(); ok {
				// The playout clock moves its phase to the new stream.
				now = due
			}
		}
		frames := 0
		switch s.jb.decide(now, true) {
		case jbPlay:
			frames = 1
		case jbCompress:
			frames = 2
			s.compress++
		case jbStretch:
			s.stretched++
		}
		if frames > 0 {
			pkts, _, _ = s.jb.take(frames, pkts[:0])
			for _, p := range pkts {
				s.got = append(s.got, p.ts)
			}
			s.jb.recycle(pkts)
		}
		s.delays = append(s.delays, s.jb.st.delay)
	}
	s.lateTotal, s.overflows = s.jb.st.late, s.jb.st.overflow
}

// stream makes n packets of 20 ms sent every 20 ms from tick 0, delayed
// by delay(k) ticks, or lost when delay returns a negative value.
func stream(n int, ts0 uint32, seq0 uint16, delay func(k int) int64) []jbArrival {
	var out []jbArrival
	for k := 0; k < n; k++ {
		d := delay(k)
		if d < 0 {
			continue
		}
		out = append(out, jbArrival{at: int64(k)*frameTicks + d, seq: seq0 + uint16(k), ts: ts0 + uint32(k*frameTicks), ssrc: 7})
	}
	return out
}

// TestJitterBufferOrder covers reordering, duplicates, late packets and
// timestamp wrap: the player gets every packet that came in time, once,
// in timestamp order.
func TestJitterBufferOrder(t *testing.T) {
	const base = 8 // 1 ms of network delay
	tests := []struct {
		name     string
		arr      []jbArrival
		wantLate uint64
	}{
		{"in order", stream(10, 1000, 1, func(int) int64 { return base }), 0},
		{"reordered", func() []jbArrival {
			// Packet 3 is held up 25 ms and overtaken by packet 4: within
			// the delay a new stream starts with, so both play, in order.
			a := stream(10, 1000, 1, func(int) int64 { return base })
			a[3].at += 200
			return a
		}(), 0},
		{"duplicate", func() []jbArrival {
			a := stream(10, 1000, 1, func(int) int64 { return base })
			d := a[5]
			d.at++
			return append(a, d)
		}(), 1},
		{"wrap", stream(10, math.MaxUint32-3*frameTicks, 65533, func(int) int64 { return base }), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s jbSim
			s.run(tt.arr, 0, 16*frameTicks)
			var want []int64
			first := int64(tt.arr[0].ts)
			for k := 0; k < 10; k++ {
				want = append(want, first+int64(k*frameTicks))
			}
			if !slices.Equal(s.got, want) || s.lateTotal != tt.wantLate {
				t.Fatalf("took %v late %d, want %v late %d", s.got, s.lateTotal, want, tt.wantLate)
			}
		})
	}
}

// TestJitterBufferReorders: every other packet is held up 25 ms and so
// overtaken by the next; once the buffer has learnt that (a packet or two
// late at the start), every packet is taken, in timestamp order.
func TestJitterBufferReorders(t *testing.T) {
	arr := stream(60, 1000, 1, func(k int) int64 {
		if k%2 == 1 {
			return 200
		}
		return 8
	})
	var s jbSim
	s.run(arr, 0, 70*frameTicks)
	if !slices.IsSorted(s.got) {
		t.Fatalf("took %v, want timestamp order", s.got)
	}
	for k := 4; k < 60; k++ {
		if ts := int64(1000 + k*frameTicks); !slices.Contains(s.got, ts) {
			t.Fatalf("packet %d (ts %d) not taken; took %v (late %d)", k, ts, s.got, s.lateTotal)
		}
	}
}

// TestJitterBufferLate: a packet that arrives after its frame was played
// (concealed) is dropped and counted, and the player never gets it.
func TestJitterBufferLate(t *testing.T) {
	var s jbSim
	arr := stream(20, 0, 1, func(k int) int64 {
		if k == 5 {
			return 400 // 50 ms late: long after its turn
		}
		return 8
	})
	s.run(arr, 0, 30*frameTicks)
	if s.lateTotal != 1 || slices.Contains(s.got, 5*frameTicks) {
		t.Fatalf("late %d, took ts %v: want packet 5 (ts %d) late and not taken", s.lateTotal, s.got, 5*frameTicks)
	}
	if len(s.got) != 19 {
		t.Fatalf("took %d packets, want the 19 that were on time", len(s.got))
	}
}

// TestJitterBufferAdapts runs 40 ms of uniform jitter (the netem link of
// the integration tests: delay 40 ms ± 40 ms, i.e. 0..80 ms above the
// fastest packet) with 5 % loss, then a quiet network. Under jitter the
// target must rise to cover nearly every packet; afterwards it must come
// back down to a few tens of milliseconds by compressing.
func TestJitterBufferAdapts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const jittery = 1500 // 30 s
	const calm = 1500
	arr := stream(jittery+calm, 5000, 100, func(k int) int64 {
		if k < jittery {
			if rng.Float64() < 0.05 {
				return -1
			}
			return 80 + rng.Int64N(640) // 10 ms + 0..80 ms
		}
		return 80
	})
	var s jbSim
	s.run(arr, 0, int64(jittery+calm+10)*frameTicks)
	sent := 0
	for _, a := range arr {
		if int(a.seq-100) < jittery {
			sent++
		}
	}
	// After the first 5 s of convergence, late packets must be rare.
	lateAfter := 0
	for _, a := range arr {
		k := int(a.seq - 100)
		if k >= 250 && k < jittery && !slices.Contains(s.got, int64(a.ts)) {
			lateAfter++
		}
	}
	if frac := float64(lateAfter) / float64(sent); frac > 0.01 {
		t.Fatalf("%.2f %% of packets late under 0..80 ms jitter after convergence, want under 1 %% (target %v ms)", 100*frac, s.jb.st.target)
	}
	midDelay := s.delays[jittery-10]
	if midDelay < 60 || midDelay > 200 {
		t.Fatalf("playout delay under 0..80 ms jitter = %.1f ms, want 60..200", midDelay)
	}
	t.Logf("late after convergence %d of %d, delay under jitter %.1f ms (target %.1f), J %.1f ms", lateAfter, sent, midDelay, s.jb.st.target, s.jb.jitter/8)
	endDelay := s.delays[len(s.delays)-1]
	if endDelay > 40 {
		t.Fatalf("playout delay 30 s after the jitter stopped = %.1f ms, want under 40 (compressed %d)", endDelay, s.compress)
	}
	if s.stretched == 0 || s.compress == 0 {
		t.Fatalf("stretched %d compressed %d, want both to have happened", s.stretched, s.compress)
	}
}

// TestJitterBufferCalm: on a clean network the buffer adds little delay
// and never stretches or compresses after it starts.
func TestJitterBufferCalm(t *testing.T) {
	var s jbSim
	s.run(stream(500, 0, 1, func(k int) int64 { return 16 + int64(k%3) }), 0, 505*frameTicks)
	d := s.delays[len(s.delays)-1]
	if d < float64(minPlayout)/8 || d > 20 {
		t.Fatalf("playout delay on a clean network = %.1f ms, want %d..20", d, minPlayout/8)
	}
	if s.lateTotal != 0 || s.stretched > 1 || s.compress > 1 {
		t.Fatalf("late %d stretched %d compressed %d, want 0, at most 1, at most 1", s.lateTotal, s.stretched, s.compress)
	}
}

// TestJitterBufferResets: a new SSRC, a jump of the timestamps, and a
// sender that resumes with its timestamps held all start the stream afresh
// rather than waiting or dropping it all as late.
func TestJitterBufferResets(t *testing.T) {
	tests := []struct {
		name string
		edit func([]jbArrival) []jbArrival
	}{
		{"new ssrc", func(a []jbArrival) []jbArrival {
			for i := 50; i < len(a); i++ {
				a[i].ssrc = 9
				a[i].ts += 123456
			}
			return a
		}},
		{"timestamp jump", func(a []jbArrival) []jbArrival {
			for i := 50; i < len(a); i++ {
				a[i].ts += 10 * rtpClock
			}
			return a
		}},
		{"held timestamps after a pause", func(a []jbArrival) []jbArrival {
			// 50 packets, 1 s of silence in which the sender's clock
			// stood still, then the rest.
			for i := 50; i < len(a); i++ {
				a[i].at += rtpClock
			}
			return a
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arr := tt.edit(stream(100, 0, 1, func(int) int64 { return 8 }))
			var s jbSim
			s.run(arr, 0, 200*frameTicks)
			if s.jb.st.resets != 1 {
				t.Fatalf("resets = %d, want 1", s.jb.st.resets)
			}
			// At most the lateReset packets that showed the move are lost.
			if len(s.got) < 100-lateReset {
				t.Fatalf("took %d packets of 100, want at least %d", len(s.got), 100-lateReset)
			}
		})
	}
}

// TestJitterBufferBounded: a peer sending far faster than real time fills
// the buffer to its bound and no further.
func TestJitterBufferBounded(t *testing.T) {
	var jb jitterBuffer
	for k := 0; k < 10*maxJBPackets; k++ {
		// All within resetAhead of the playout point, all at tick 0.
		jb.push(0, 1, uint16(k), uint32(k%(resetAhead/frameTicks)*frameTicks), PCMU, make([]byte, frameTicks))
	}
	if len(jb.pkts) > maxJBPackets || cap(jb.pkts) > 2*maxJBPackets {
		t.Fatalf("buffer holds %d packets (cap %d), want at most %d", len(jb.pkts), cap(jb.pkts), maxJBPackets)
	}
	jb2 := jitterBuffer{}
	for k := 0; k < 2*maxJBPackets; k++ {
		// 1.25 ms packets, so all of them fit within resetAhead.
		jb2.push(0, 1, uint16(k), uint32(k*10), PCMU, make([]byte, 10))
	}
	if len(jb2.pkts) != maxJBPackets || jb2.st.overflow == 0 {
		t.Fatalf("after %d packets in one instant: %d held, overflow %d; want %d held and overflow counted",
			2*maxJBPackets, len(jb2.pkts), jb2.st.overflow, maxJBPackets)
	}
}

// TestJitterBufferLossCount checks RFC 3550 §A.3's loss count across a
// sequence wrap.
func TestJitterBufferLossCount(t *testing.T) {
	var jb jitterBuffer
	seqs := []uint16{65530, 65531, 65533, 65535, 0, 3, 4}
	for i, q := range seqs {
		jb.push(int64(i*frameTicks), 1, q, uint32(int(q-65530)*frameTicks), PCMU, []byte{0})
	}
	var st Stats
	jb.snapshot(&st)
	// 65530..4 is 11 packets; 7 arrived.
	if st.PacketsLost != 4 {
		t.Fatalf("PacketsLost = %d, want 4", st.PacketsLost)
	}
}
