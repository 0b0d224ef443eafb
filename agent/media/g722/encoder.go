package g722

import "slices"

// Encoder is a G.722 64 kbit/s encoder for one stream. It keeps filter and
// predictor state between calls, so a stream is encoded by one Encoder in
// order; it is not safe for concurrent use. Create it with NewEncoder: the
// zero value is not ready.
type Encoder struct {
	qmf  qmf
	low  lowBand
	high highBand
	// held is a sample waiting for its pair when the last call had an odd
	// number of samples; valid only while holding is true.
	held    int16
	holding bool
}

// NewEncoder returns an encoder in the reset state of G.722.
func NewEncoder() *Encoder {
	e := new(Encoder)
	e.Reset()
	return e
}

// Reset returns the encoder to its initial state, as at the start of a new
// stream, and drops a held odd sample.
func (e *Encoder) Reset() {
	e.qmf.reset()
	e.low.reset()
	e.high.reset()
	e.held, e.holding = 0, false
}

// Encode appends the G.722 encoding of pcm (16 kHz mono, 16-bit linear) to
// dst and returns the extended slice: one octet per two samples, so a
// 20 ms frame of FrameSamples20ms samples gives 160 octets. Codewords pair
// samples across calls: if pcm (together with a sample held from the
// previous call) has an odd length, the last sample is held and encoded
// with the first sample of the next call; Held reports it and Reset drops
// it. Encode does not allocate when dst has room for the output.
func (e *Encoder) Encode(dst []byte, pcm []int16) []byte {
	n := len(pcm)
	if e.holding {
		n++
	}
	dst = slices.Grow(dst, n/2)
	if e.holding && len(pcm) > 0 {
		dst = append(dst, e.encodePair(e.held, pcm[0]))
		pcm = pcm[1:]
		e.holding = false
	}
	even := len(pcm) &^ 1
	for i := 0; i < even; i += 2 {
		dst = append(dst, e.encodePair(pcm[i], pcm[i+1]))
	}
	if even < len(pcm) {
		e.held, e.holding = pcm[even], true
	}
	return dst
}

// Held reports whether a sample is waiting for its pair (see Encode).
func (e *Encoder) Held() bool { return e.holding }

// encodePair codes two consecutive samples into one octet IH|IL.
func (e *Encoder) encodePair(older, newer int16) byte {
	xl, xh := e.qmf.analyze(older, newer)
	il := e.low.encode(xl)
	ih := e.high.encode(xh)
	return ih<<6 | il
}
