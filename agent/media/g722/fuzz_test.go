package g722

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"testing"
)

// checkPredictor reports a predictor state outside the bounds the
// algorithm's limiters promise; maxD is the largest quantized difference the
// band's inverse quantizer can produce at its largest scale factor.
func checkPredictor(p *predictor, maxD int32) error {
	if p.a2 < -12288 || p.a2 > 12288 {
		return fmt.Errorf("a2 = %d, want |a2| <= 12288", p.a2)
	}
	if lim := 15360 - p.a2; p.a1 < -lim || p.a1 > lim {
		return fmt.Errorf("a1 = %d with a2 = %d, want |a1| <= %d", p.a1, p.a2, lim)
	}
	for i := range 6 {
		if p.d[i] < -maxD || p.d[i] > maxD {
			return fmt.Errorf("d(n-%d) = %d, want |d| <= %d", i+1, p.d[i], maxD)
		}
		if p.b[i] < -32768 || p.b[i] > 32767 {
			return fmt.Errorf("b%d = %d, want 16-bit", i+1, p.b[i])
		}
	}
	for i := range 2 {
		if p.r[i] < -32768 || p.r[i] > 32767 {
			return fmt.Errorf("r(n-%d) = %d, want 16-bit", i+1, p.r[i])
		}
	}
	if p.s < -32768 || p.s > 32767 {
		return fmt.Errorf("s = %d, want 16-bit", p.s)
	}
	if maxSz := 6 * ((32767 * 2 * maxD) >> 15); p.sz < -maxSz-6 || p.sz > maxSz {
		return fmt.Errorf("sz = %d, want |sz| <= %d", p.sz, maxSz)
	}
	return nil
}

// checkBands reports sub-band state outside its bounds.
func checkBands(low *lowBand, high *highBand, q *qmf) error {
	if low.nb < 0 || low.nb > lowLogMax || low.det != linearScale(low.nb, lowBias) {
		return fmt.Errorf("low band nb = %d, det = %d, want nb in [0, %d] and det = %d",
			low.nb, low.det, lowLogMax, linearScale(low.nb, lowBias))
	}
	if high.nb < 0 || high.nb > highLogMax || high.det != linearScale(high.nb, highBias) {
		return fmt.Errorf("high band nb = %d, det = %d, want nb in [0, %d] and det = %d",
			high.nb, high.det, highLogMax, linearScale(high.nb, highBias))
	}
	// The largest |d|: the largest scale factor times the outermost
	// inverse quantizer level (QM4 ±20456, QM2 ±7408), over 2^15.
	if err := checkPredictor(&low.pred, (16384*20456)>>15); err != nil {
		return fmt.Errorf("low band: %w", err)
	}
	if err := checkPredictor(&high.pred, (16384*7408)>>15); err != nil {
		return fmt.Errorf("high band: %w", err)
	}
	if q.pos < qmfTaps-2 || q.pos > qmfBufLen-2 || q.pos%2 != 0 {
		return fmt.Errorf("qmf pos = %d, want even in [%d, %d]", q.pos, qmfTaps-2, qmfBufLen-2)
	}
	return nil
}

// fuzzMaxOctets caps what one fuzz execution decodes: a G.722 RTP payload
// in an Ethernet-sized datagram is below it, the per-call state carries over
// between calls (checked by splitting), and short inputs keep the
// executions fast enough for the budget to explore.
const fuzzMaxOctets = 1500

func fuzzSeeds(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x00})
	f.Add(bytes.Repeat([]byte{0x04}, fuzzMaxOctets))
	for _, s := range testSignals() {
		f.Add(NewEncoder().Encode(nil, s.pcm[:FrameSamples20ms]))
	}
	b, err := os.ReadFile("testdata/zero_section_overflow.g722")
	if err != nil {
		f.Fatalf("read seed stream: %v", err)
	}
	f.Add(b[:fuzzMaxOctets])
}

// FuzzDecode feeds arbitrary octets to the decoder, the input a hostile
// peer controls: no panic, exactly two samples per octet, bounded state
// after every call, and decoding in two pieces gives the same samples as
// decoding at once.
//
//fuzz:budget 60000
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		data = data[:min(len(data), fuzzMaxOctets)]
		d := NewDecoder()
		out := d.Decode(nil, data)
		if len(out) != 2*len(data) {
			t.Fatalf("len(Decode(%d octets)) = %d, want %d", len(data), len(out), 2*len(data))
		}
		if err := checkBands(&d.low, &d.high, &d.qmf); err != nil {
			t.Fatalf("Decode(%x): state out of bounds: %v", data, err)
		}
		split := 0
		if len(data) > 0 {
			split = int(data[0]) % (len(data) + 1)
		}
		d2 := NewDecoder()
		got := d2.Decode(nil, data[:split])
		if err := checkBands(&d2.low, &d2.high, &d2.qmf); err != nil {
			t.Fatalf("Decode(%x): state out of bounds: %v", data[:split], err)
		}
		got = d2.Decode(got, data[split:])
		if !slices.Equal(got, out) {
			t.Fatalf("Decode split at %d of %d differs from one call", split, len(data))
		}
	})
}

// FuzzRoundTrip feeds arbitrary PCM (two octets a sample, little-endian)
// to the encoder in two pieces of arbitrary, possibly odd, length, and its
// output to the decoder: no panic, one octet per two samples, the same
// octets as one call, bounded state on both sides.
//
//fuzz:budget 60000
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{}, uint16(0))
	for _, s := range testSignals() {
		f.Add(s16le(s.pcm[:FrameSamples20ms+1]), uint16(7))
	}
	f.Fuzz(func(t *testing.T, raw []byte, cut uint16) {
		pcm := fromS16le(raw[:min(len(raw), 2*fuzzMaxOctets)])
		whole := NewEncoder().Encode(nil, pcm)
		if len(whole) != len(pcm)/2 {
			t.Fatalf("len(Encode(%d samples)) = %d, want %d", len(pcm), len(whole), len(pcm)/2)
		}
		e := NewEncoder()
		split := int(cut) % (len(pcm) + 1)
		enc := e.Encode(nil, pcm[:split])
		if e.Held() != (split%2 == 1) {
			t.Fatalf("Held() after %d samples = %v", split, e.Held())
		}
		enc = e.Encode(enc, pcm[split:])
		if !bytes.Equal(enc, whole) {
			t.Fatalf("Encode split at %d of %d samples differs from one call", split, len(pcm))
		}
		if err := checkBands(&e.low, &e.high, &e.qmf); err != nil {
			t.Fatalf("encoder state out of bounds: %v", err)
		}
		d := NewDecoder()
		if out := d.Decode(nil, enc); len(out) != 2*len(enc) {
			t.Fatalf("len(Decode(%d octets)) = %d, want %d", len(enc), len(out), 2*len(enc))
		}
		if err := checkBands(&d.low, &d.high, &d.qmf); err != nil {
			t.Fatalf("decoder state out of bounds: %v", err)
		}
	})
}
