package g722

// The upper sub-band ADPCM coder of G.722 (BLOCKs 1H to 6H of §6): a 4-level
// adaptive quantizer for the 2-bit codeword IH (§3.3), its inverse (§3.4)
// and the scale factor adaptation (§3.5).

// highLevel is the single magnitude decision level of QUANTH (Q2), in units
// of det/4096.
const highLevel = 564

// highInv is the 2-bit inverse quantizer (QM2 of INVQAH), in units of
// det/32768, indexed by IH.
var highInv = [4]int32{-7408, -1616, 7408, 1616}

// highLogStep is the log scale factor step (WH of LOGSCH, through RIH2)
// indexed by IH: the outer levels widen the quantizer, the inner narrow it.
var highLogStep = [4]int32{798, -214, 798, -214}

const (
	highLogMax = 22528 // upper limit of NBH (LOGSCH)
	highBias   = 10    // SCALEH exponent bias
	highDet0   = 8     // DETH after reset
)

// highBand is the state of the upper sub-band coder.
type highBand struct {
	pred predictor
	nb   int32 // log scale factor NBH, Q11, in [0, highLogMax]
	det  int32 // linear scale factor DETH, derived from nb
}

func (h *highBand) reset() {
	*h = highBand{det: highDet0}
}

// encode quantizes one upper-band sample xh (15-bit) to the 2-bit codeword
// IH (SUBTRA, QUANTH) and adapts the state as the decoder will.
func (h *highBand) encode(xh int32) uint8 {
	eh := sat16i(xh - h.pred.s)
	wd := eh
	if eh < 0 {
		wd = ^eh
	}
	outer := wd >= (highLevel*h.det)>>12
	var ih uint8
	switch {
	case eh < 0 && outer:
		ih = 0
	case eh < 0:
		ih = 1
	case outer:
		ih = 2
	default:
		ih = 3
	}
	h.adapt(ih)
	return ih
}

// decode returns the upper-band reconstructed signal for codeword ih
// (INVQAH, RECONS, LIMIT) and adapts the state.
func (h *highBand) decode(ih uint8) int32 {
	dh := (h.det * highInv[ih&3]) >> 15
	rh := clamp(h.pred.s+dh, -16384, 16383)
	h.adaptDiff(ih, dh)
	return rh
}

// adapt runs the feedback path for codeword ih: INVQAH, LOGSCH, SCALEH and
// the predictor update.
func (h *highBand) adapt(ih uint8) {
	h.adaptDiff(ih, (h.det*highInv[ih&3])>>15)
}

func (h *highBand) adaptDiff(ih uint8, dh int32) {
	h.nb = clamp((h.nb*127)>>7+highLogStep[ih&3], 0, highLogMax)
	h.det = linearScale(h.nb, highBias)
	h.pred.update(dh)
}
