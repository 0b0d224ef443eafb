package media

import (
	"fmt"
	"strings"

	"github.com/zaf/g711"
)

// Codec is an audio codec, named by its static RTP payload type
// (RFC 3551 §6). Both are G.711 at 8000 Hz, one byte per sample.
type Codec uint8

// The codecs a call can carry.
const (
	PCMU Codec = 0 // G.711 μ-law
	PCMA Codec = 8 // G.711 A-law
)

// frameSamples is one 20 ms frame at 8 kHz: 160 samples, a 160-byte G.711
// payload, a 172-byte RTP packet.
const (
	sampleRate   = 8000
	frameSamples = 160
	frameMillis  = 20
)

func (c Codec) String() string {
	switch c {
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	}
	return fmt.Sprintf("Codec(%d)", uint8(c))
}

// MarshalText names the codec in Stats JSON.
func (c Codec) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

func (c Codec) valid() bool { return c == PCMU || c == PCMA }

// codecByName maps an rtpmap encoding name (case-insensitive, RFC 4566
// §6) at 8000 Hz to a codec.
func codecByName(name string) (Codec, bool) {
	switch strings.ToUpper(name) {
	case "PCMU":
		return PCMU, true
	case "PCMA":
		return PCMA, true
	}
	return 0, false
}

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
