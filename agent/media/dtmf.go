package media

import (
	"fmt"
	"time"
)

// RFC 4733 §2.3 telephone-event payload, one event per packet:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     event     |E|R| volume    |          duration             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const dtmfPayloadLen = 4

const (
	// dtmfVolume is -10 dBm0, a usual level for DTMF (RFC 4733 §2.3.4
	// gives the range 0..63 as -0..-63 dBm0).
	dtmfVolume = 10
	// dtmfEndCopies: RFC 4733 §2.5.1.4 has the final packet of an event
	// sent three times.
	dtmfEndCopies = 3
	// dtmfGapFrames is the pause between queued digits.
	dtmfGapFrames = 2
	minDTMF       = 40 * time.Millisecond
	maxDTMF       = 5 * time.Second
	dtmfQueueLen  = 32
)

type dtmfPayload struct {
	Event    uint8
	End      bool
	Volume   uint8  // 0..63, in -dBm0
	Duration uint16 // in timestamp units (1/8000 s) since the event began
}

func (p dtmfPayload) marshal(b []byte) []byte {
	flags := p.Volume & 0x3f
	if p.End {
		flags |= 0x80
	}
	return append(b, p.Event, flags, byte(p.Duration>>8), byte(p.Duration))
}

func parseDTMFPayload(b []byte) (dtmfPayload, error) {
	if len(b) != dtmfPayloadLen {
		return dtmfPayload{}, fmt.Errorf("telephone-event payload of %d bytes, want %d: %w", len(b), dtmfPayloadLen, errMalformed)
	}
	return dtmfPayload{
		Event:    b[0],
		End:      b[1]&0x80 != 0,
		Volume:   b[1] & 0x3f,
		Duration: uint16(b[2])<<8 | uint16(b[3]),
	}, nil
}

// dtmfEventCode maps a digit to its RFC 4733 §3.2 event code.
func dtmfEventCode(r rune) (uint8, bool) {
	switch {
	case r >= '0' && r <= '9':
		return uint8(r - '0'), true
	case r == '*':
		return 10, true
	case r == '#':
		return 11, true
	case r >= 'A' && r <= 'D':
		return uint8(r-'A') + 12, true
	case r >= 'a' && r <= 'd':
		return uint8(r-'a') + 12, true
	}
	return 0, false
}

// dtmfRune is the inverse of dtmfEventCode; events above 15 (flash and
// the rest) are not digits.
func dtmfRune(ev uint8) (rune, bool) {
	switch {
	case ev <= 9:
		return rune('0' + ev), true
	case ev == 10:
		return '*', true
	case ev == 11:
		return '#', true
	case ev <= 15:
		return rune('A' + ev - 12), true
	}
	return 0, false
}

// dtmfTone is a queued digit to send.
type dtmfTone struct {
	event  uint8
	frames int // event length in 20 ms frames
}

// dtmfReceiver turns telephone-event packets into digits. All packets of
// one event share its RTP timestamp (RFC 4733 §2.5.1); the digit is
// reported once, on the first end packet, whatever the retransmissions.
type dtmfReceiver struct {
	have    bool
	ts      uint32
	event   uint8
	emitted bool
}

func (d *dtmfReceiver) handle(ts uint32, p dtmfPayload) (rune, bool) {
	if !d.have || ts != d.ts {
		d.have, d.ts, d.event, d.emitted = true, ts, p.Event, false
	}
	if !p.End || d.emitted || p.Event != d.event {
		return 0, false
	}
	d.emitted = true
	return dtmfRune(p.Event)
}
