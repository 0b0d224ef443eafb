package audio

// ring is a fixed-capacity FIFO of samples between a device's I/O goroutine
// and the call's ReadFrame/WriteFrame. It never grows: a push that does not
// fit drops the oldest samples, so the queue (and the latency it adds) stays
// bounded however far a producer runs ahead of its consumer. It is not safe
// for concurrent use; its owner guards it with a mutex.
type ring struct {
	buf  []int16 // len(buf) is the capacity; never resized
	head int     // index of the oldest sample
	n    int     // samples queued, 0..len(buf)
}

func newRing(capacity int) ring { return ring{buf: make([]int16, capacity)} }

// push appends s and returns how many old samples it dropped to make room.
// When s alone exceeds the capacity only its newest samples are kept.
func (r *ring) push(s []int16) (dropped int) {
	c := len(r.buf)
	if len(s) >= c {
		dropped = r.n + len(s) - c
		copy(r.buf, s[len(s)-c:])
		r.head, r.n = 0, c
		return dropped
	}
	if over := r.n + len(s) - c; over > 0 {
		r.discard(over)
		dropped = over
	}
	tail := (r.head + r.n) % c
	k := copy(r.buf[tail:], s)
	copy(r.buf, s[k:])
	r.n += len(s)
	return dropped
}

// pop moves up to len(dst) of the oldest samples into dst and returns how
// many it moved.
func (r *ring) pop(dst []int16) int {
	k := min(len(dst), r.n)
	if k == 0 {
		return 0
	}
	first := copy(dst[:k], r.buf[r.head:min(r.head+k, len(r.buf))])
	copy(dst[first:k], r.buf)
	r.discard(k)
	return k
}

// discard drops the k oldest samples (k <= r.n).
func (r *ring) discard(k int) {
	r.head = (r.head + k) % len(r.buf)
	r.n -= k
	if r.n == 0 {
		r.head = 0
	}
}

// free is how many samples fit before a push drops any.
func (r *ring) free() int { return len(r.buf) - r.n }
