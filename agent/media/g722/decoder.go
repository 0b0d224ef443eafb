package g722

import "slices"

// Decoder is a G.722 64 kbit/s decoder for one stream. It keeps filter and
// predictor state between calls, so a stream is decoded by one Decoder in
// order; it is not safe for concurrent use. Create it with NewDecoder: the
// zero value is not ready.
type Decoder struct {
	qmf  qmf
	low  lowBand
	high highBand
}

// NewDecoder returns a decoder in the reset state of G.722.
func NewDecoder() *Decoder {
	d := new(Decoder)
	d.Reset()
	return d
}

// Reset returns the decoder to its initial state, as at the start of a new
// stream.
func (d *Decoder) Reset() {
	d.qmf.reset()
	d.low.reset()
	d.high.reset()
}

// Decode appends the 16 kHz samples of the G.722 octets in data to dst and
// returns the extended slice: exactly two samples per octet. Every octet is
// a valid codeword, so there is no error. Decode does not allocate when dst
// has room for the output.
func (d *Decoder) Decode(dst []int16, data []byte) []int16 {
	dst = slices.Grow(dst, 2*len(data))
	for _, c := range data {
		rl := d.low.decode(c & 63)
		rh := d.high.decode(c >> 6)
		first, second := d.qmf.synthesize(rl, rh)
		dst = append(dst, first, second)
	}
	return dst
}
