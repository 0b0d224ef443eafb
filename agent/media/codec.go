package media

import (
	"fmt"
	"strings"

	"github.com/hardphone/hardphone/agent/media/g722"
)

// Codec is an audio codec, named by its static RTP payload type
// (RFC 3551 §6, Table 4).
type Codec uint8

// The codecs a call can carry, in the order we prefer them.
const (
	// G722 is ITU-T G.722 at 64 kbit/s: 16 kHz wideband audio, one octet
	// per two samples. Its RTP clock is nevertheless 8000 Hz (RFC 3551
	// §4.5.2), so a 20 ms packet advances the timestamp by 160, like G.711.
	G722 Codec = g722.PayloadType
	// PCMU is G.711 μ-law, 8 kHz narrowband, one octet per sample.
	PCMU Codec = 0
	// PCMA is G.711 A-law, 8 kHz narrowband, one octet per sample.
	PCMA Codec = 8
)

// DefaultCodecs is what a session offers and accepts when Config.Codecs is
// nil: wideband first, then the two G.711 laws every SIP phone has.
//
// Opus is not among them, on purpose, though a pure-Go decoder is served
// (github.com/pion/opus v0.1.0) and is good: on libopus streams of speech
// it decodes SILK (12 kbit/s), hybrid (24 and 32 kbit/s) and CELT
// (64 kbit/s) frames with no error, at 0.995 correlation with libopus's
// own output for SILK and hybrid (a sub-sample difference in the SILK
// resampler's delay) and 88 dB SNR for CELT, in 40 to 160 µs per 20 ms
// packet. What is missing is the other half. An offer or answer lists, for
// a sendrecv stream, the formats we will both send and receive (RFC 3264
// §5.1, §6.1); a receive-only Opus would have to be listed beside G.722 and
// rely on the peer sending Opus while accepting G.722 back, an asymmetry
// SDP cannot express for one format and that many desk phones and PBXs do
// not handle, and it would put a large new parser on the path every packet
// of a hostile peer reaches, for little gain over G.722 on the LANs and
// VPNs a desk phone talks over. Opus comes when an encoder does: a pure-Go
// one that holds up against libopus, or libopus through cgo behind a build
// tag.
var DefaultCodecs = []Codec{G722, PCMU, PCMA}

// rtpClock is the RTP timestamp rate of every codec we carry, in Hz: 8000
// for G.711 and, by RFC 3551 §4.5.2's historical error kept for
// compatibility, for G.722 too. telephone-event runs at it as well.
const rtpClock = 8000

// frameMillis is the packet duration we send (a=ptime:20) and the step of
// the playout clock; frameTicks is the same in RTP timestamp units.
const (
	frameMillis = 20
	frameTicks  = rtpClock * frameMillis / 1000
	// sampleRate and frameSamples are G.711's: the narrowband rate a
	// Source or Sink without a Rate method is taken to run at.
	sampleRate   = 8000
	frameSamples = sampleRate * frameMillis / 1000
)

func (c Codec) String() string {
	switch c {
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	case G722:
		return "G722"
	}
	return fmt.Sprintf("Codec(%d)", uint8(c))
}

// MarshalText names the codec in Stats JSON.
func (c Codec) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

func (c Codec) valid() bool { return c == PCMU || c == PCMA || c == G722 }

// Rate is the codec's audio sampling rate in Hz (not its RTP clock rate).
func (c Codec) Rate() int {
	if c == G722 {
		return g722.SampleRate
	}
	return sampleRate
}

// samplesPerTick is how many audio samples one RTP timestamp unit holds.
func (c Codec) samplesPerTick() int { return c.Rate() / rtpClock }

// ticks is the RTP duration of a payload of n octets: one tick per octet
// for G.711 (one sample) and for G.722 (two samples at twice the clock).
func (c Codec) ticks(n int) int { return n }

// codecByName maps an rtpmap encoding name (case-insensitive, RFC 4566
// §6) to a codec; the caller checks the clock rate.
func codecByName(name string) (Codec, bool) {
	switch strings.ToUpper(name) {
	case "PCMU":
		return PCMU, true
	case "PCMA":
		return PCMA, true
	case "G722":
		return G722, true
	}
	return 0, false
}

// encoder codes one direction of one stream; G.722 keeps state between
// frames, so each stream has its own.
type encoder interface {
	encode(dst []byte, pcm []int16) []byte
}

// decoder is the receive-side counterpart of encoder.
type decoder interface {
	decode(dst []int16, payload []byte) []int16
}

func (c Codec) newEncoder() encoder {
	if c == G722 {
		return g722Enc{g722.NewEncoder()}
	}
	return g711Coder{c}
}

func (c Codec) newDecoder() decoder {
	if c == G722 {
		return g722Dec{g722.NewDecoder()}
	}
	return g711Coder{c}
}

type g722Enc struct{ e *g722.Encoder }

func (e g722Enc) encode(dst []byte, pcm []int16) []byte { return e.e.Encode(dst, pcm) }

type g722Dec struct{ d *g722.Decoder }

func (d g722Dec) decode(dst []int16, payload []byte) []int16 { return d.d.Decode(dst, payload) }
