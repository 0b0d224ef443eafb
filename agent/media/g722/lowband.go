package g722

// The lower sub-band ADPCM coder of G.722 (BLOCKs 1L to 6L of §6): a 60-level
// adaptive quantizer for the 6-bit codeword IL (§3.3), its 4-bit truncation
// fed back to the predictor (§3.4), and the scale factor adaptation (§3.5).

// lowLevels are the decision levels of the 6-bit quantizer (Q6 of QUANTL),
// in units of det/4096, for the magnitude intervals 1..29; interval 30 is
// open above. The levels are symmetric about zero.
var lowLevels = [29]int32{
	35, 72, 110, 150, 190, 233, 276, 323, 370, 422,
	473, 530, 587, 650, 714, 786, 858, 940, 1023, 1121,
	1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
}

// lowCodeNeg and lowCodePos are the codewords IL (ILN and ILP of QUANTL)
// for a negative and a non-negative difference signal in magnitude
// interval k (0-based: k levels lie at or below the magnitude). Codewords
// 0..3 are never sent.
var (
	lowCodeNeg = [30]uint8{
		63, 62, 31, 30, 29, 28, 27, 26, 25, 24,
		23, 22, 21, 20, 19, 18, 17, 16, 15, 14,
		13, 12, 11, 10, 9, 8, 7, 6, 5, 4,
	}
	lowCodePos = [30]uint8{
		61, 60, 59, 58, 57, 56, 55, 54, 53, 52,
		51, 50, 49, 48, 47, 46, 45, 44, 43, 42,
		41, 40, 39, 38, 37, 36, 35, 34, 33, 32,
	}
)

// lowInv6 is the 6-bit inverse quantizer (QM6 of INVQBL), in units of
// det/32768, indexed by IL; the decoder's output uses it in the 64 kbit/s
// mode. Codewords 0..3 map to a small negative level so that any octet
// decodes.
var lowInv6 = [64]int32{
	-136, -136, -136, -136, -24808, -21904, -19008, -16704,
	-14984, -13512, -12280, -11192, -10232, -9360, -8576, -7856,
	-7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576,
	-3168, -2776, -2400, -2032, -1688, -1360, -1040, -728,
	24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192,
	10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456,
	4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032,
	1688, 1360, 1040, 728, 432, 136, -432, -136,
}

// lowInv4 is the 4-bit inverse quantizer (QM4 of INVQAL), indexed by IL>>2:
// the predictor and the scale adaptation see only the top four bits of IL,
// so that the 56 and 48 kbit/s modes, which steal the low bits, keep encoder
// and decoder in step.
var lowInv4 = [16]int32{
	0, -20456, -12896, -8968, -6288, -4240, -2584, -1200,
	20456, 12896, 8968, 6288, 4240, 2584, 1200, 0,
}

// lowLogStep is the log scale factor step (WL of LOGSCL, through RIL4)
// indexed by IL>>2: large codewords widen the quantizer, small ones narrow
// it.
var lowLogStep = [16]int32{
	-60, 3042, 1198, 538, 334, 172, 58, -30,
	3042, 1198, 538, 334, 172, 58, -30, -60,
}

const (
	lowLogMax = 18432 // upper limit of NBL (LOGSCL)
	lowBias   = 8     // SCALEL exponent bias
	lowDet0   = 32    // DETL after reset
)

// lowBand is the state of the lower sub-band coder.
type lowBand struct {
	pred predictor
	nb   int32 // log scale factor NBL, Q11, in [0, lowLogMax]
	det  int32 // linear scale factor DETL, derived from nb
}

func (l *lowBand) reset() {
	*l = lowBand{det: lowDet0}
}

// encode quantizes one lower-band sample xl (15-bit) to the 6-bit codeword
// IL (SUBTRA, QUANTL) and adapts the state as the decoder will.
func (l *lowBand) encode(xl int32) uint8 {
	il := quantizeLow(sat16i(xl-l.pred.s), l.det)
	l.adapt(il)
	return il
}

// decode returns the lower-band reconstructed signal for codeword il
// (INVQBL, RECONS, LIMIT) and adapts the state.
func (l *lowBand) decode(il uint8) int32 {
	rl := clamp(l.pred.s+(l.det*lowInv6[il&63])>>15, -16384, 16383)
	l.adapt(il)
	return rl
}

// quantizeLow is QUANTL: the 6-bit codeword for difference signal el at
// scale factor det.
func quantizeLow(el, det int32) uint8 {
	// QUANTL compares the ones' complement magnitude, so -1 falls in the
	// same interval as 0 and the intervals are symmetric.
	wd := el
	if el < 0 {
		wd = ^el
	}
	// Binary search for the first level above wd, where QUANTL scans
	// upwards: the scaled levels are non-decreasing, so both find the same
	// interval (TestQuantizeLowMatchesScan).
	k, hi := 0, len(lowLevels)
	for k < hi {
		mid := int(uint(k+hi) >> 1)
		if wd >= (lowLevels[mid]*det)>>12 {
			k = mid + 1
		} else {
			hi = mid
		}
	}
	if el < 0 {
		return lowCodeNeg[k]
	}
	return lowCodePos[k]
}

// adapt runs the feedback path for codeword il: INVQAL, LOGSCL, SCALEL and
// the predictor update.
func (l *lowBand) adapt(il uint8) {
	i4 := (il >> 2) & 15
	dl := (l.det * lowInv4[i4]) >> 15
	l.nb = clamp((l.nb*127)>>7+lowLogStep[i4], 0, lowLogMax)
	l.det = linearScale(l.nb, lowBias)
	l.pred.update(dl)
}
