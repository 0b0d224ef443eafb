package media

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// TestG722OfferRFC3551: G.722 goes first in our offer under its static
// payload type 9 (RFC 3551 §6, Table 4) with an 8000 Hz clock (§4.5.2: "the
// RTP clock rate for G.722 is 8,000 Hz" although it samples at 16,000), then
// PCMU and PCMA.
func TestG722OfferRFC3551(t *testing.T) {
	s := newTestSession(t, testConfig(t, "a", SecuritySDES))
	offer, err := s.Offer()
	if err != nil {
		t.Fatal(err)
	}
	m := sdpLines(string(offer), "m=audio")
	if len(m) != 1 || !strings.Contains(m[0], " RTP/SAVP 9 0 8 101") {
		t.Fatalf("m= line %v, want formats 9 0 8 101 in that order", m)
	}
	maps := sdpLines(string(offer), "a=rtpmap:")
	want := []string{"a=rtpmap:9 G722/8000", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000"}
	if !slices.Equal(maps, want) {
		t.Fatalf("rtpmap lines %v, want %v", maps, want)
	}
}

// TestG722AnswerRFC3551: an offer of G.722 by static type alone (no
// rtpmap, which RFC 3551 allows) or with the 8000 Hz rtpmap is answered
// with G.722, even where the offerer put PCMU first (we prefer wideband);
// "G722/16000" is not G.722 as RFC 3551 defines it and is not taken.
func TestG722AnswerRFC3551(t *testing.T) {
	tests := []struct {
		name      string
		formats   string
		rtpmaps   string
		wantCodec Codec
	}{
		{"static type", "9", "", G722},
		{"rtpmap", "9", "a=rtpmap:9 G722/8000\r\n", G722},
		{"pcmu preferred by the offerer", "0 9", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:9 G722/8000\r\n", G722},
		{"16 kHz clock", "0 9", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:9 G722/16000\r\n", PCMU},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSession(t, testConfig(t, "b", SecuritySDES))
			offer := "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
				"m=audio 40000 RTP/SAVP " + tt.formats + "\r\n" + tt.rtpmaps +
				"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + b64(30) + "\r\na=sendrecv\r\n"
			ans, err := s.Answer([]byte(offer))
			if err != nil {
				t.Fatalf("Answer: %v\n%s", err, offer)
			}
			st := s.Stats()
			if st.Codec != tt.wantCodec.String() || st.SampleRate != tt.wantCodec.Rate() {
				t.Fatalf("negotiated %s at %d Hz, want %s at %d Hz\n%s", st.Codec, st.SampleRate, tt.wantCodec, tt.wantCodec.Rate(), ans)
			}
		})
	}
}

// TestJitterRFC3550: the interarrival jitter of RFC 3550 §A.8,
// J(i) = J(i-1) + (|D(i-1,i)| - J(i-1))/16, on transits that alternate by
// 80 ticks (10 ms): J approaches 80 as 80 (1 - (15/16)^n), and Stats
// reports it in milliseconds.
func TestJitterRFC3550(t *testing.T) {
	var jb jitterBuffer
	// 40 packets: all within a second of the first, so with no playout
	// clock running none of them restarts the stream.
	const n = 40
	for i := 0; i <= n; i++ {
		// Sent every 160 ticks, delayed 0 or 80 by turns.
		at := int64(i*frameTicks) + int64(80*(i%2))
		jb.push(at, 1, uint16(i), uint32(i*frameTicks), PCMU, make([]byte, frameTicks))
	}
	want := 80 * (1 - math.Pow(15.0/16, n))
	if math.Abs(jb.jitter-want) > 1e-9 {
		t.Fatalf("J after %d alternating transits = %v ticks, want %v", n, jb.jitter, want)
	}
	var st Stats
	jb.snapshot(&st)
	if math.Abs(st.JitterMS-want/8) > 1e-9 {
		t.Fatalf("Stats().JitterMS = %v, want %v", st.JitterMS, want/8)
	}
}
