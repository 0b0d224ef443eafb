package g722

// The parts both sub-band ADPCM coders share: the adaptive predictor of
// G.722 §3.6 (BLOCK 4L and 4H of §6) and the conversion of the logarithmic
// quantizer scale factor to a linear one (SCALEL, SCALEH, §3.5).
//
// All signals are 16-bit two's complement as in §6; sat16 stands for the
// spec's saturating "+" wherever a sum can leave that range.

// predictor is the pole-zero predictor of one sub-band: two poles fed by the
// reconstructed signal r, six zeros fed by the quantized difference signal
// d. The encoder and the decoder each run one per band and keep them in
// step, since both see the same d.
type predictor struct {
	a1, a2 int32    // pole coefficients, |a2| <= 12288, |a1| <= 15360-a2
	b      [6]int32 // zero coefficients b1..b6, each in [-32768, 32767]
	d      [6]int32 // d(n-1)..d(n-6), newest first, |d| <= 10228
	pNeg   [2]bool  // sign of the partial reconstruction p(n-1), p(n-2)
	r      [2]int32 // reconstructed signal r(n-1), r(n-2)
	sz     int32    // zero-section output for the next sample, |sz| <= 6·20456
	s      int32    // predicted signal for the next sample, 16-bit
}

// update runs BLOCK 4 for one sample with quantized difference dq: it
// adapts the coefficients (UPPOL2, UPPOL1, UPZERO), shifts the delay lines
// (DELAYA) and forms the prediction for the next sample (FILTEP, FILTEZ,
// PREDIC), in the spec's order except that the zero section's three steps
// share one loop.
func (p *predictor) update(dq int32) {
	// RECONS and PARREC: the reconstructed signal and the partial one that
	// leaves out the pole section. Only the sign of p is used; saturating
	// the sum would not change it.
	r := sat16i(p.s + dq)
	pNeg := p.sz+dq < 0

	// UPPOL2: a2 leaks towards zero by 1/128 per sample and moves by 128
	// towards agreement of p(n) with p(n-2), corrected by a term in a1.
	wd1 := clamp(p.a1*4, -32768, 32767)
	if pNeg == p.pNeg[0] {
		wd1 = -wd1
	}
	wd1 = min(wd1, 32767) // -(-32768)
	wd3 := int32(-128)
	if pNeg == p.pNeg[1] {
		wd3 = 128
	}
	wd3 += wd1 >> 7
	wd3 += (p.a2 * 32512) >> 15
	a2 := clamp(wd3, -12288, 12288)

	// UPPOL1: a1 leaks by 1/256 and moves by 192 towards agreement of p(n)
	// with p(n-1); |a1| <= 15360 - a2 keeps the two-pole section stable.
	step := int32(-192)
	if pNeg == p.pNeg[0] {
		step = 192
	}
	a1 := sat16i(step + (p.a1*32640)>>15)
	lim := sat16i(15360 - a2)
	a1 = clamp(a1, -lim, lim)

	// UPZERO, DELAYA and FILTEZ for the zero section in one pass: each b
	// leaks by 1/256 and moves by 128 towards agreement of the sign of
	// d(n) with that of the d it weights (no move when d(n) is zero); the
	// delay line shifts by one; and the new b weigh the shifted line.
	//
	// The spec saturates b's update, but b·255/256 ± 128 stays within
	// [-32768, 32767] for any 16-bit b. |d| <= 10228 (the largest scale
	// factor, 16384, times the largest inverse quantizer level, 20456, over
	// 2^15), so 2·d needs no saturation either. The sign test is
	// branch-free: m is -1 when the signs differ, 0 when they agree, and
	// (g^m)-m is then -g or g.
	//
	// The six products of FILTEZ are summed in 32 bits and not saturated:
	// only PREDIC's sum is. With 16-bit saturation here the prediction
	// differs once |sz| passes 32767, which takes hostile or pathological
	// codewords (all six zeros saturated and in agreement; real audio stays
	// below a third of that); fixed-point implementations differ on that
	// corner, and we match ffmpeg's, so that both decode any octet stream
	// to the same samples (the tests check it on such streams).
	// |sz| <= 6·20456.
	var g int32
	if dq != 0 {
		g = 128
	}
	var sz int32
	in := dq
	for i := range p.d {
		d := p.d[i]
		m := (d ^ dq) >> 31
		b := (g ^ m) - m + (p.b[i]*32640)>>15
		p.b[i] = b
		sz += (b * (in * 2)) >> 15
		p.d[i] = in
		in = d
	}
	p.sz = sz

	// DELAYA for the pole section.
	p.pNeg[1], p.pNeg[0] = p.pNeg[0], pNeg
	p.r[1], p.r[0] = p.r[0], r
	p.a1, p.a2 = a1, a2

	// FILTEP: the pole section on 2·r.
	sp := sat16i((p.a1*sat16i(p.r[0]+p.r[0]))>>15 + (p.a2*sat16i(p.r[1]+p.r[1]))>>15)

	// PREDIC.
	p.s = sat16i(sp + p.sz)
}

// scaleTable is ILB of §6 (SCALEL): 2048·2^(i/32) rounded, the mantissa of
// the linear scale factor indexed by the fractional part of its log.
var scaleTable = [32]int32{
	2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383,
	2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
	2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371,
	3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
}

// linearScale converts the log scale factor nb (Q11, in [0, 22528]) to the
// linear scale factor det (SCALEL with bias 8, SCALEH with bias 10): the
// mantissa from bits 6..10 of nb, the exponent from bits 11 and up.
func linearScale(nb int32, bias int32) int32 {
	m := scaleTable[(nb>>6)&31]
	if sh := bias - nb>>11; sh >= 0 {
		m >>= sh
	} else {
		m <<= -sh
	}
	return m << 2
}

// sat16i limits v to the 16-bit two's complement range.
func sat16i(v int32) int32 { return clamp(v, -32768, 32767) }

// sat16 limits v to the 16-bit range and narrows it.
func sat16(v int32) int16 { return int16(sat16i(v)) }

func clamp(v, lo, hi int32) int32 { return max(lo, min(v, hi)) }
