package g722

import (
	"math"
	"testing"
)

// Tables and constants checked against ITU-T G.722 (and RFC 3551 for the RTP
// numbers). Where a table is stored in a different shape than the
// Recommendation prints it, the test rebuilds the printed shape; where two
// tables must agree with each other (decision levels and reconstruction
// levels), the test checks the relation rather than repeating the numbers.

// TestQMFCoefficients: G.722 §3.1 and Table 11/G.722 print the 24 taps
// h(0)..h(23) of the QMF scaled by 2^13; we store the 12 even taps and
// derive the odd ones by symmetry.
func TestQMFCoefficients(t *testing.T) {
	printed := [24]int32{
		3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876,
		3876, 951, -805, -210, 362, 32, -156, 12, 53, -11, -11, 3,
	}
	var sum int32
	for i, want := range printed {
		got := qmfCoeffs[i/2]
		if i%2 == 1 {
			got = qmfCoeffs[11-i/2]
		}
		if got != want {
			t.Errorf("h(%d) = %d, want %d", i, got, want)
		}
		if printed[23-i] != want {
			t.Errorf("h(%d) = %d, h(%d) = %d: the QMF must be symmetric", i, want, 23-i, printed[23-i])
		}
		sum += got
	}
	// The taps sum to 2^13: unity DC gain through the 14-bit shifts of
	// analysis and the 11-bit shift of synthesis (with its factor of 2).
	if sum != 8192 {
		t.Errorf("sum of h(i) = %d, want 8192", sum)
	}
}

// TestQMFPassesDC: a constant input comes out of the analysis filter as a
// lower-band constant of half the amplitude and a zero upper band, and out
// of the synthesis filter as the same constant.
func TestQMFPassesDC(t *testing.T) {
	for _, x := range []int16{1000, -1000, 32767, -32768} {
		var a, s qmf
		a.reset()
		s.reset()
		var xl, xh int32
		var y0, y1 int16
		for range 20 { // past the 24-sample fill
			xl, xh = a.analyze(x, x)
			y0, y1 = s.synthesize(xl, xh)
		}
		if xl != int32(x)/2 || xh != 0 {
			t.Errorf("analyze(%d, %d) = %d, %d, want %d, 0", x, x, xl, xh, x/2)
		}
		if d0, d1 := int32(y0)-int32(x), int32(y1)-int32(x); d0 < -1 || d0 > 1 || d1 < -1 || d1 > 1 {
			t.Errorf("synthesize(analyze(%d)) = %d, %d, want %d ±1", x, y0, y1, x)
		}
	}
}

// TestScaleTable: ILB (SCALEL, §3.5) is the mantissa 2048·2^(i/32).
func TestScaleTable(t *testing.T) {
	for i, got := range scaleTable {
		if want := int32(math.Round(2048 * math.Pow(2, float64(i)/32))); got != want {
			t.Errorf("ILB(%d) = %d, want %d", i, got, want)
		}
	}
}

// TestScaleFactorRange: the reset scale factors are DETL = 32 and DETH = 8
// (NBL = NBH = 0 after reset), and the limits of NBL and NBH give the largest
// step sizes.
func TestScaleFactorRange(t *testing.T) {
	for _, tt := range []struct {
		name     string
		nb, bias int32
		want     int32
	}{
		{"DETL at NBL=0", 0, lowBias, lowDet0},
		{"DETH at NBH=0", 0, highBias, highDet0},
		{"DETL at NBL=18432", lowLogMax, lowBias, 16384},
		{"DETH at NBH=22528", highLogMax, highBias, 16384},
		{"DETL one octave up", 2048, lowBias, 2 * lowDet0},
	} {
		if got := linearScale(tt.nb, tt.bias); got != tt.want {
			t.Errorf("%s: linearScale(%d, %d) = %d, want %d", tt.name, tt.nb, tt.bias, got, tt.want)
		}
	}
}

// TestLowQuantizerCodes: QUANTL's ILN and ILP (§3.3) hand out each of the
// 60 codewords 4..63 exactly once; 0..3 are never sent.
func TestLowQuantizerCodes(t *testing.T) {
	var seen [64]int
	for k := range 30 {
		seen[lowCodeNeg[k]]++
		seen[lowCodePos[k]]++
	}
	for c, n := range seen {
		want := 1
		if c < 4 {
			want = 0
		}
		if n != want {
			t.Errorf("codeword %d is used %d times, want %d", c, n, want)
		}
	}
}

// TestLowQuantizerLevels: the reconstruction level of every codeword
// (QM6 of INVQBL, §3.4, in det/32768 units) lies inside the decision
// interval (Q6 of QUANTL, det/4096 units) that produces it, for both signs;
// the two tables are printed separately in the Recommendation, so this
// catches a slip in either.
func TestLowQuantizerLevels(t *testing.T) {
	for k := range 30 {
		lo := int32(0)
		if k > 0 {
			lo = lowLevels[k-1] * 8
		}
		hi := int32(math.MaxInt32)
		if k < len(lowLevels) {
			hi = lowLevels[k] * 8
		}
		if v := lowInv6[lowCodePos[k]]; v < lo || v >= hi {
			t.Errorf("QM6(%d) = %d for interval %d, want in [%d, %d)", lowCodePos[k], v, k, lo, hi)
		}
		if v := -lowInv6[lowCodeNeg[k]]; v < lo || v >= hi {
			t.Errorf("-QM6(%d) = %d for interval %d, want in [%d, %d)", lowCodeNeg[k], v, k, lo, hi)
		}
		if lowInv6[lowCodePos[k]] != -lowInv6[lowCodeNeg[k]] {
			t.Errorf("QM6(%d) = %d, QM6(%d) = %d: want symmetric levels", lowCodePos[k], lowInv6[lowCodePos[k]],
				lowCodeNeg[k], lowInv6[lowCodeNeg[k]])
		}
	}
	// QM4 of INVQAL is the 4-bit quantizer the feedback path uses: its
	// level for the codewords sharing their top four bits lies among
	// their 6-bit levels.
	for g := 1; g < 16; g++ {
		lo, hi := int32(math.MaxInt32), int32(math.MinInt32)
		for c := 4 * g; c < 4*g+4; c++ {
			lo, hi = min(lo, lowInv6[c]), max(hi, lowInv6[c])
		}
		if v := lowInv4[g]; v < lo || v > hi {
			t.Errorf("QM4(%d) = %d, want in [%d, %d]", g, v, lo, hi)
		}
	}
}

// TestLowLogStep: LOGSCL (§3.5) adds WL(RIL4(IL>>2)); we store the
// composition.
func TestLowLogStep(t *testing.T) {
	wl := [8]int32{-60, -30, 58, 172, 334, 538, 1198, 3042}
	rl42 := [16]int{0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0}
	for i, got := range lowLogStep {
		if want := wl[rl42[i]]; got != want {
			t.Errorf("WL(RIL4(%d)) = %d, want %d", i, got, want)
		}
	}
}

// TestHighQuantizer: QUANTH's single level (Q2 = 564, det/4096) separates
// the inner (QM2 = ±1616) from the outer (±7408) reconstruction level
// (det/32768), and LOGSCH adds WH(RIH2(IH)).
func TestHighQuantizer(t *testing.T) {
	wh := [3]int32{0, -214, 798}
	rh2 := [4]int{2, 1, 2, 1}
	for ih := range 4 {
		if got, want := highLogStep[ih], wh[rh2[ih]]; got != want {
			t.Errorf("WH(RIH2(%d)) = %d, want %d", ih, got, want)
		}
		v := highInv[ih]
		outer := ih == 0 || ih == 2
		if mag := max(v, -v); outer != (mag > highLevel*8) {
			t.Errorf("QM2(%d) = %d: outer = %v, want %v against the level %d", ih, v, mag > highLevel*8, outer, highLevel*8)
		}
		if neg := ih < 2; neg != (v < 0) {
			t.Errorf("QM2(%d) = %d: negative = %v, want %v", ih, v, v < 0, neg)
		}
	}
}

// TestQuantizeLowMatchesScan: QUANTL scans the decision levels upwards;
// quantizeLow searches them by bisection. Both must give the same codeword
// at every reachable scale factor, at and around every scaled level.
func TestQuantizeLowMatchesScan(t *testing.T) {
	scan := func(el, det int32) uint8 {
		wd := el
		if el < 0 {
			wd = -(el + 1)
		}
		k := 0
		for k < len(lowLevels) && wd >= (lowLevels[k]*det)>>12 {
			k++
		}
		if el < 0 {
			return lowCodeNeg[k]
		}
		return lowCodePos[k]
	}
	dets := map[int32]bool{}
	for nb := int32(0); nb <= lowLogMax; nb++ {
		dets[linearScale(nb, lowBias)] = true
	}
	for det := range dets {
		for _, level := range lowLevels {
			edge := (level * det) >> 12
			for _, el := range []int32{edge - 1, edge, edge + 1, -edge - 2, -edge - 1, -edge, 0, -1, 32767, -32768} {
				if got, want := quantizeLow(el, det), scan(el, det); got != want {
					t.Fatalf("quantizeLow(%d, %d) = %d, want %d", el, det, got, want)
				}
			}
		}
	}
}

// TestCodewordLayout: G.722 §1.4.4 sends IH in the two most significant
// bits and IL in the six below. Decoding an octet must use the top bits
// for the upper band.
func TestCodewordLayout(t *testing.T) {
	for c := range 256 {
		d := NewDecoder()
		d.Decode(nil, []byte{byte(c)})
		var low lowBand
		var high highBand
		low.reset()
		high.reset()
		low.decode(uint8(c & 63))
		high.decode(uint8(c >> 6))
		if d.low != low || d.high != high {
			t.Fatalf("Decode(%#02x) does not split it as IH=%d, IL=%d", c, c>>6, c&63)
		}
	}
}

// TestRTPConstants: RFC 3551 §4.5.2 gives G.722 an 8000 Hz RTP clock for
// 16000 Hz audio, so a 20 ms packet of 320 samples is 160 octets and
// advances the RTP timestamp by 160; §6 assigns payload type 9.
func TestRTPConstants(t *testing.T) {
	for _, tt := range []struct {
		name      string
		got, want int
	}{
		{"SampleRate", SampleRate, 16000},
		{"RTPClockRate", RTPClockRate, 8000},
		{"PayloadType", PayloadType, 9},
		{"FrameSamples20ms", FrameSamples20ms, SampleRate * 20 / 1000},
		{"octets per 20 ms", len(NewEncoder().Encode(nil, make([]int16, FrameSamples20ms))), RTPClockRate * 20 / 1000},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}
