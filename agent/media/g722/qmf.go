package g722

// The quadrature mirror filters of G.722 §3.1 (transmit) and §4.4 (receive),
// with the fixed-point arithmetic of §5.2.1 and §5.2.2: one 24-tap symmetric
// FIR filter h(0..23) used both to split the 16 kHz signal into two 8 kHz
// sub-bands and to merge them again.
//
// For each pair of input samples x(j-1), x(j) the transmit QMF forms
//
//	xA = Σ h(2i)   · x(j-2i)      i = 0..11
//	xB = Σ h(2i+1) · x(j-2i-1)
//	xL = (xA + xB) >> 14          lower band
//	xH = (xA - xB) >> 14          upper band
//
// and for each pair of sub-band samples rL, rH the receive QMF forms
// xd = rL - rH, xs = rL + rH and
//
//	xout(j)   = Σ h(2i)   · xd(n-i) >> 11
//	xout(j+1) = Σ h(2i+1) · xs(n-i) >> 11
//
// The 24 taps sum to 8192, so with 16-bit samples the shifts give the
// sub-band coders 15-bit signals (half the input amplitude, the range their
// limiters and quantizer tables are built for) and give the decoder unity
// gain back to 16 bits.

// qmfCoeffs are the even taps h(0), h(2), …, h(22) of Table 11/G.722. The
// filter is symmetric, h(i) = h(23-i), so the odd taps are
// h(2i+1) = h(22-2i) = qmfCoeffs[11-i].
var qmfCoeffs = [12]int32{3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11}

const (
	qmfTaps = 24
	// qmfPairs is how many sample pairs the delay line takes before it
	// slides back: the window is a moving slice of a longer array, so a
	// pair costs two stores instead of a 22-element shift, and one copy of
	// 22 values every qmfPairs pairs.
	qmfPairs  = 128
	qmfBufLen = qmfTaps - 2 + 2*qmfPairs
)

// qmf is the delay line of one filter. The window x[pos-24:pos] holds the
// last 24 samples fed in, oldest first; the zero value is not ready, reset
// sets pos.
type qmf struct {
	x   [qmfBufLen]int32
	pos int // qmfTaps-2 <= pos <= qmfBufLen-2 between calls
}

func (q *qmf) reset() {
	*q = qmf{pos: qmfTaps - 2}
}

// push appends the pair (older, newer) and returns the two polyphase sums
// over the new window: a weights the newest sample with h(0) and every
// second one before it with h(2), h(4), …; b weights the older sample of
// the pair with h(1) and so on.
func (q *qmf) push(older, newer int32) (a, b int32) {
	q.x[q.pos] = older
	q.x[q.pos+1] = newer
	q.pos += 2
	w := (*[qmfTaps]int32)(q.x[q.pos-qmfTaps : q.pos])
	for i := 0; i < 12; i++ {
		b += w[2*i] * qmfCoeffs[i]
		a += w[2*i+1] * qmfCoeffs[11-i]
	}
	if q.pos == qmfBufLen {
		copy(q.x[:qmfTaps-2], q.x[qmfBufLen-(qmfTaps-2):])
		q.pos = qmfTaps - 2
	}
	return a, b
}

// analyze is the transmit QMF: it splits two 16 kHz samples into one
// lower-band and one upper-band sample.
func (q *qmf) analyze(older, newer int16) (xl, xh int32) {
	a, b := q.push(int32(older), int32(newer))
	return (a + b) >> 14, (a - b) >> 14
}

// synthesize is the receive QMF: it merges one lower-band and one
// upper-band sample into two 16 kHz samples, the earlier first.
func (q *qmf) synthesize(rl, rh int32) (first, second int16) {
	a, b := q.push(rl+rh, rl-rh)
	// The older slot holds xs = rL + rH and the newer xd = rL - rH, so the
	// sum weighted by h(0), h(2), … runs over xd: it is xout(j).
	return sat16(a >> 11), sat16(b >> 11)
}
