package media

import "github.com/zaf/g711"

// g711Coder is G.711 in either law; it has no state.
type g711Coder struct{ c Codec }

func (g g711Coder) encode(dst []byte, pcm []int16) []byte { return g.c.encode(dst, pcm) }

func (g g711Coder) decode(dst []int16, payload []byte) []int16 { return g.c.decode(dst, payload) }

// encode appends the G.711 encoding of pcm to dst.
func (c Codec) encode(dst []byte, pcm []int16) []byte {
	if c == PCMA {
		for _, s := range pcm {
			dst = append(dst, g711.EncodeAlawFrame(s))
		}
		return dst
	}
	for _, s := range pcm {
		dst = append(dst, g711.EncodeUlawFrame(s))
	}
	return dst
}

// decode appends the linear samples of a G.711 payload to dst.
func (c Codec) decode(dst []int16, payload []byte) []int16 {
	if c == PCMA {
		for _, b := range payload {
			dst = append(dst, g711.DecodeAlawFrame(b))
		}
		return dst
	}
	for _, b := range payload {
		dst = append(dst, g711.DecodeUlawFrame(b))
	}
	return dst
}
