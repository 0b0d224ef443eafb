package media

// Packet-loss concealment: audio made up for a packet that was lost, came
// too late, or was never sent, so that a gap sounds like a held vowel
// fading out rather than a click followed by silence.
//
// The method is ITU-T G.711 Appendix I's (pitch waveform replication), run
// on the decoded signal at the codec's own rate:
//
//   - keep the last 48.75 ms of good output;
//   - at the first missing sample, find the pitch period P (5 to 15 ms) by
//     normalised cross-correlation of the last 20 ms against itself;
//   - play the last period again and again, its end overlap-added with the
//     quarter period before its start so the repetition has no seam; after
//     10 ms repeat the last two periods, after 20 ms three (a single period
//     repeated for long sounds buzzy); from 10 ms on fade out linearly by
//     20 % per 10 ms, so the signal is silent after 60 ms;
//   - when real audio comes back, overlap-add the concealment's
//     continuation into it over a quarter period plus 4 ms per 10 ms of
//     gap beyond the first (at most 10 ms), so the join does not click.
//
// G.722 has concealment of its own in Appendices III and IV, which work in
// the codec's sub-bands and also repair the ADPCM predictor state. We use
// the time-domain method on the decoded 16 kHz signal instead: it is the
// same code for every codec, needs no changes inside the G.722 decoder
// (which the tests hold bit-exact to ffmpeg's), and the recovery crossfade
// covers the few milliseconds in which a G.722 decoder whose state missed
// the lost packet converges back (its predictor and scale factors adapt on
// every sample). Appendix III sounds better on long bursts of loss; that
// would be the next step if a call's Stats show many concealed frames.
//
// Unlike Appendix I we do not delay the output by 3.75 ms to smooth the
// start of a gap: the first repeated period starts where the real signal
// ended, which for voiced speech (periodic by definition) is close to
// continuous, and the delay would be paid on every call for every frame.

import "math"

const (
	plcHistMillis = 48.75 // history kept, as in Appendix I: 3.25 max periods
	plcMinPitchMs = 5.0   // 200 Hz
	plcMaxPitchMs = 15.0  // 66.7 Hz
	plcCorrMs     = 20.0  // correlation window
	plcFadeMs     = 10    // attenuation steps and period-count steps
	plcSilentMs   = 60    // fully faded out
)

// plc conceals gaps in one decoded stream at rate Hz. It is used by one
// goroutine (the playout loop).
type plc struct {
	rate int
	// hist is the last histLen good (or, during a gap, output) samples,
	// oldest first.
	hist    []float64
	histLen int
	// During a gap: pitch period, how many samples have been concealed,
	// and the read position in the replicated periods.
	pitch     int
	lost      int
	periods   int // 1..3: how many trailing periods are being replicated
	pos       int // index into the replicated buffer
	rep       []float64
	minPitch  int
	maxPitch  int
	corrLen   int
	fadeStep  int // samples per 10 ms
	silentLen int
	scratch   []float64
}

func newPLC(rate int) *plc {
	ms := func(m float64) int { return int(m * float64(rate) / 1000) }
	p := &plc{
		rate:      rate,
		histLen:   ms(plcHistMillis),
		minPitch:  ms(plcMinPitchMs),
		maxPitch:  ms(plcMaxPitchMs),
		corrLen:   ms(plcCorrMs),
		fadeStep:  ms(plcFadeMs),
		silentLen: ms(plcSilentMs),
	}
	p.hist = make([]float64, p.histLen)
	return p
}

// concealing reports whether the last output was made up.
func (p *plc) concealing() bool { return p.lost > 0 }

// good passes n real samples through: if a gap was being concealed, the
// start of pcm is blended with the concealment's continuation. pcm is
// modified in place.
func (p *plc) good(pcm []int16) {
	if p.lost > 0 {
		q := p.pitch / 4
		extra := (p.lost/p.fadeStep - 1) * p.rate * 4 / 1000
		n := min(len(pcm), q+max(extra, 0), p.fadeStep)
		if n > 0 {
			cont := p.synth(p.scratch[:0], n)
			for i := 0; i < n; i++ {
				w := float64(i+1) / float64(n+1)
				pcm[i] = clamp16(w*float64(pcm[i]) + (1-w)*cont[i])
			}
		}
		p.lost, p.rep = 0, p.rep[:0]
	}
	p.push(pcm)
}

// join marks a splice: the next good samples do not follow the last ones
// (the jitter buffer dropped a frame), so they are blended in from the
// continuation of what was played, as after a gap.
func (p *plc) join() {
	if p.lost == 0 {
		p.start()
		p.lost = 1
	}
}

// conceal appends n made-up samples to dst.
func (p *plc) conceal(dst []int16, n int) []int16 {
	if p.lost == 0 {
		p.start()
	}
	out := p.synth(p.scratch[:0], n)
	for _, v := range out {
		dst = append(dst, clamp16(v))
	}
	return dst
}

// start begins a gap: find the pitch and set up the single-period
// replication.
func (p *plc) start() {
	p.pitch = p.findPitch()
	p.periods = 1
	p.pos = 0
	p.buildRep()
}

// buildRep prepares the last p.periods periods of history for replication,
// the end of the buffer overlap-added with the quarter period before its
// start, so wrapping around is smooth.
func (p *plc) buildRep() {
	span := p.periods * p.pitch
	q := p.pitch / 4
	h := p.hist
	start := len(h) - span
	p.rep = append(p.rep[:0], h[start:]...)
	for i := 0; i < q; i++ {
		w := float64(i+1) / float64(q+1)
		// Blend the last q samples towards the q samples that precede the
		// buffer's start, which lead into its first sample.
		j := span - q + i
		p.rep[j] = (1-w)*h[start+j] + w*h[start-q+i]
	}
}

// synth appends n samples of the replicated, faded signal to dst and
// advances the gap.
func (p *plc) synth(dst []float64, n int) []float64 {
	for i := 0; i < n; i++ {
		// Step up the number of periods at 10 and 20 ms into the gap.
		if p.lost > 0 && p.lost%p.fadeStep == 0 && p.periods < 3 && p.lost/p.fadeStep == p.periods {
			if (p.periods+1)*p.pitch+p.pitch/4 <= len(p.hist) {
				p.periods++
				// Go on from the same phase, in the newest period.
				p.pos = (p.periods-1)*p.pitch + p.pos%p.pitch
				p.buildRep()
			}
		}
		var gain float64
		switch {
		case p.lost >= p.silentLen:
			gain = 0
		case p.lost < p.fadeStep:
			gain = 1
		default:
			// 20 % per 10 ms after the first 10 ms, linearly within each step.
			gain = 1 - 0.2*float64(p.lost-p.fadeStep)/float64(p.fadeStep)
		}
		v := 0.0
		if gain > 0 && len(p.rep) > 0 {
			v = gain * p.rep[p.pos%len(p.rep)]
		}
		p.pos++
		p.lost++
		dst = append(dst, v)
	}
	p.scratch = dst[:0]
	return dst
}

// push appends real samples to the history.
func (p *plc) push(pcm []int16) {
	if len(pcm) >= p.histLen {
		for i := range p.hist {
			p.hist[i] = float64(pcm[len(pcm)-p.histLen+i])
		}
		return
	}
	copy(p.hist, p.hist[len(pcm):])
	base := p.histLen - len(pcm)
	for i, v := range pcm {
		p.hist[base+i] = float64(v)
	}
}

// findPitch returns the lag in minPitch..maxPitch that maximises the
// normalised cross-correlation of the last corrLen samples with the ones
// lag earlier. Silence gives maxPitch (any period will do).
func (p *plc) findPitch() int {
	h := p.hist
	n := len(h)
	best, bestLag := -1.0, p.maxPitch
	x := h[n-p.corrLen:]
	for lag := p.minPitch; lag <= p.maxPitch; lag++ {
		y := h[n-p.corrLen-lag : n-lag]
		var xy, yy float64
		for i := range x {
			xy += x[i] * y[i]
			yy += y[i] * y[i]
		}
		if yy == 0 {
			continue
		}
		if c := xy / math.Sqrt(yy); c > best {
			best, bestLag = c, lag
		}
	}
	return bestLag
}
