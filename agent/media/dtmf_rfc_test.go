package media

import (
	"bytes"
	"testing"
)

// TestDTMFPayloadRFC4733 checks the telephone-event layout of RFC 4733
// §2.3: event (8 bits), E (1), R (1), volume (6), duration (16, network
// order), with the event codes of §3.2 (0-9, * = 10, # = 11, A-D = 12-15).
func TestDTMFPayloadRFC4733(t *testing.T) {
	tests := []struct {
		digit rune
		p     dtmfPayload
		wire  []byte
	}{
		// Digit 5 at -10 dBm0, 100 ms (800 units at 8 kHz), not ended.
		{'5', dtmfPayload{Event: 5, Volume: 10, Duration: 800}, []byte{0x05, 0x0A, 0x03, 0x20}},
		// '#' ended: E bit set, R bit zero.
		{'#', dtmfPayload{Event: 11, End: true, Volume: 10, Duration: 1600}, []byte{0x0B, 0x8A, 0x06, 0x40}},
		// '*' at the lowest level (-63 dBm0) and the longest duration.
		{'*', dtmfPayload{Event: 10, End: true, Volume: 63, Duration: 0xFFFF}, []byte{0x0A, 0xBF, 0xFF, 0xFF}},
		{'D', dtmfPayload{Event: 15, Volume: 0, Duration: 160}, []byte{0x0F, 0x00, 0x00, 0xA0}},
	}
	for _, tt := range tests {
		if got := tt.p.marshal(nil); !bytes.Equal(got, tt.wire) {
			t.Errorf("marshal(%+v) = % x, want % x", tt.p, got, tt.wire)
		}
		got, err := parseDTMFPayload(tt.wire)
		if err != nil || got != tt.p {
			t.Errorf("parseDTMFPayload(% x) = %+v, %v, want %+v", tt.wire, got, err, tt.p)
		}
		if ev, ok := dtmfEventCode(tt.digit); !ok || ev != tt.p.Event {
			t.Errorf("dtmfEventCode(%q) = %d, %v, want %d", tt.digit, ev, ok, tt.p.Event)
		}
		if r, ok := dtmfRune(tt.p.Event); !ok || r != tt.digit {
			t.Errorf("dtmfRune(%d) = %q, want %q", tt.p.Event, r, tt.digit)
		}
	}
	// The R bit is reserved: a receiver ignores it (RFC 4733 §2.3.3).
	if got, err := parseDTMFPayload([]byte{0x01, 0xCA, 0x00, 0xA0}); err != nil || !got.End || got.Volume != 10 {
		t.Errorf("parseDTMFPayload with R set = %+v, %v", got, err)
	}
	if _, err := parseDTMFPayload([]byte{1, 2, 3}); err == nil {
		t.Errorf("parseDTMFPayload(3 bytes) = nil error")
	}
	// Event 16 is flash (§3.2), not a digit.
	if _, ok := dtmfRune(16); ok {
		t.Errorf("dtmfRune(16) is a digit")
	}
}

// TestDTMFReceiverDedup follows RFC 4733 §2.5.1: packets of one event share
// a timestamp, the end packet is sent three times, and a new event has a
// new timestamp even for the same digit.
func TestDTMFReceiverDedup(t *testing.T) {
	var d dtmfReceiver
	var got []rune
	feed := func(ts uint32, p dtmfPayload) {
		if r, ok := d.handle(ts, p); ok {
			got = append(got, r)
		}
	}
	for _, ts := range []uint32{1000, 2000} {
		for dur := uint16(160); dur <= 480; dur += 160 {
			feed(ts, dtmfPayload{Event: 1, Duration: dur})
		}
		for i := 0; i < 3; i++ {
			feed(ts, dtmfPayload{Event: 1, End: true, Duration: 640})
		}
	}
	if string(got) != "11" {
		t.Fatalf("received %q, want \"11\" (one digit per event)", string(got))
	}
}
