package test

// Speech for audio-quality tests: espeak-ng says a sentence, sox converts
// it and reports its statistics, and Intelligibility scores what arrived at
// the far end of a call against what was said.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/cmplx"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Speak has espeak-ng say text and returns it as mono 16-bit samples at
// rate Hz (sox converts from espeak-ng's 22050 Hz with its high-quality
// resampler), padded with lead and tail seconds of silence. espeak-ng is
// deterministic: the same text gives the same samples.
func Speak(t testing.TB, text string, rate int, lead, tail float64) []int16 {
	t.Helper()
	espeak := requireBinary(t, "espeak-ng")
	dir := t.TempDir()
	raw := filepath.Join(dir, "espeak.wav")
	if out, err := exec.Command(espeak, "-v", "en-us", "-s", "150", "-w", raw, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	pcm := Sox(t, nil, raw, "-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r", strconv.Itoa(rate), "-")

	speech := make([]int16, len(pcm)/2)
	for i := range speech {
		speech[i] = int16(binary.LittleEndian.Uint16(pcm[2*i:]))
	}
	out := make([]int16, int(lead*float64(rate)), int((lead+tail)*float64(rate))+len(speech))
	out = append(out, speech...)
	return append(out, make([]int16, int(tail*float64(rate)))...)
}

// Sox runs sox on args (input options, input, output options, output,
// effects) and returns its standard output; stdin, if not nil, is its
// standard input (name the input "-").
func Sox(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	sox := requireBinary(t, "sox")
	cmd := exec.Command(sox, append([]string{"-V1"}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sox %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// rawArgs is sox's description of mono signed 16-bit samples at rate Hz.
func rawArgs(rate int) []string {
	return []string{"-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r", strconv.Itoa(rate)}
}

// soxRaw passes samples at rate Hz through sox, converted to outRate Hz
// and through effects.
func soxRaw(t testing.TB, x []int16, rate, outRate int, effects ...string) []int16 {
	t.Helper()
	in := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint16(in[2*i:], uint16(v))
	}
	args := append(append(rawArgs(rate), "-"), append(rawArgs(outRate), "-")...)
	return bytesToSamples(Sox(t, in, append(args, effects...)...))
}

// SoxStats returns what `sox FILE -n stats` reports for a WAV file, keyed
// by its labels ("RMS lev dB", "Pk lev dB", "Length s", ...).
func SoxStats(t testing.TB, wav string) map[string]float64 {
	t.Helper()
	sox := requireBinary(t, "sox")
	out, err := exec.Command(sox, wav, "-n", "stats").CombinedOutput()
	if err != nil {
		t.Fatalf("sox %s -n stats: %v: %s", wav, err, out)
	}
	st := map[string]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		st[strings.Join(f[:len(f)-1], " ")] = v
	}
	return st
}

// WriteWAV writes mono 16-bit samples at rate Hz to path.
func WriteWAV(t testing.TB, path string, samples []int16, rate int) {
	t.Helper()
	if err := os.WriteFile(path, encodeWAV(samples, rate), 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// Resample converts mono samples from one rate to another with sox.
func Resample(t testing.TB, x []int16, from, to int) []int16 {
	t.Helper()
	if from == to {
		return x
	}
	return soxRaw(t, x, from, to)
}

func bytesToSamples(b []byte) []int16 {
	out := make([]int16, len(b)/2)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return out
}

// Score is how well a received recording matches what was said.
type Score struct {
	// STOI is the short-time objective intelligibility (Taal, Hendriks,
	// Heusdens and Jensen, IEEE TASLP 19(7), 2011), 0..1: the correlation
	// of the temporal envelopes of 15 one-third-octave bands (150 Hz to
	// 4.3 kHz) over 384 ms segments, with the received envelope scaled to
	// the sent one's level and clipped at 15 dB above it. Above about 0.9
	// speech is near fully intelligible; 0.7 is intelligible with effort.
	// Each segment is scored at the best lag within ±100 ms of the overall
	// alignment, in 3.2 ms steps, so the few frames a jitter buffer inserts
	// or drops move the alignment without counting as damage (they are
	// heard as such only when they cut into speech, which the bands then
	// show). The search lifts the score of unrelated signals too (noise
	// against speech scores about 0.45 rather than near 0), and the same
	// for every recording compared.
	STOI float64
	// Correlation is the peak normalised cross-correlation of the two
	// waveforms (both band-limited to 300-3400 Hz so that codecs of either
	// bandwidth compare alike) at the overall alignment, found to the
	// sample: 1 is identical up to level. It is low for a call whose jitter buffer moved the audio
	// in time even when every word is clear, so STOI is the measure of
	// intelligibility and Correlation of waveform fidelity.
	Correlation float64
	// LagMS is where the received speech starts relative to the sent:
	// the delay through the call, the recording's start offset included.
	LagMS float64
}

func (s Score) String() string {
	return fmt.Sprintf("STOI %.3f, correlation %.3f at %.0f ms", s.STOI, s.Correlation, s.LagMS)
}

// Intelligibility scores received (at recRate) against sent (at sentRate).
// Both are converted to 10 kHz with sox, as STOI defines.
func Intelligibility(t testing.TB, sent []int16, sentRate int, received []int16, recRate int) Score {
	t.Helper()
	const fs = 10000
	x := toFloat(Resample(t, sent, sentRate, fs))
	y := toFloat(Resample(t, received, recRate, fs))
	if len(x) < 2*stoiFrame || len(y) < 2*stoiFrame {
		t.Fatalf("Intelligibility: %d sent and %d received samples, too short", len(x), len(y))
	}
	X, ex := stoiBands(x)
	// The overall alignment: to the frame by the band envelopes, then to
	// the sample by the waveforms (band-limited) around it.
	bx := toFloat(Resample(t, bandLimit(t, sent, sentRate), sentRate, fs))
	by := toFloat(Resample(t, bandLimit(t, received, recRate), recRate, fs))
	Y0, _ := stoiBands(y)
	var sc Score
	lag, _ := peakCorrelation(bx, by, envelopeLag(X, Y0)*stoiHop, stoiHop)
	sc.LagMS = float64(lag) * 1000 / fs
	sc.Correlation = segmentalCorrelation(bx, by, lag)
	// Received envelopes at the lag and at quarter-hop offsets from it, so
	// a segment's own alignment is searched in 3.2 ms steps.
	var Ys [stoiSubShifts][][]float64
	for k := range stoiSubShifts {
		off := lag + k*stoiHop/stoiSubShifts
		var shifted []float64
		if off >= 0 {
			shifted = y[min(off, len(y)):]
		} else {
			shifted = append(make([]float64, -off), y...)
		}
		if len(shifted) < stoiFrame {
			shifted = append(shifted, make([]float64, stoiFrame)...)
		}
		Ys[k], _ = stoiBands(shifted)
	}
	sc.STOI = stoiScore(X, Ys[:], ex)
	return sc
}

func toFloat(x []int16) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// bandLimit filters to 300-3400 Hz with sox's sinc filter.
func bandLimit(t testing.TB, x []int16, rate int) []int16 {
	t.Helper()
	return soxRaw(t, x, rate, rate, "sinc", "300-3400")
}

// STOI's constants (Taal et al. 2011, §II).
const (
	stoiFrame   = 256 // 25.6 ms Hann frames at 10 kHz
	stoiHop     = 128
	stoiFFT     = 512
	stoiNBands  = 15
	stoiLowHz   = 150
	stoiSegment = 30  // frames: 384 ms
	stoiBeta    = -15 // dB: lower signal-to-distortion bound of the clipping
	stoiDynamic = 40  // dB: frames this far below the loudest are silence
	stoiSearch  = 8   // frames searched each way for a segment's alignment
	// stoiSubShifts is how many offsets within a hop a segment's alignment
	// is searched at.
	stoiSubShifts = 4
)

// stoiBands returns the one-third-octave band envelopes, [band][frame],
// and each frame's energy in dB.
func stoiBands(x []float64) ([][]float64, []float64) {
	nFrames := (len(x)-stoiFrame)/stoiHop + 1
	win := make([]float64, stoiFrame)
	for i := range win {
		// The Hann window of the reference implementation (no zero ends).
		win[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i+1)/float64(stoiFrame+1))
	}
	var lo, hi [stoiNBands]int
	for j := range stoiNBands {
		cf := stoiLowHz * math.Pow(2, float64(j)/3)
		lo[j] = int(math.Round(cf * math.Pow(2, -1.0/6) * stoiFFT / 10000))
		hi[j] = int(math.Round(cf * math.Pow(2, 1.0/6) * stoiFFT / 10000))
	}
	bands := make([][]float64, stoiNBands)
	for j := range bands {
		bands[j] = make([]float64, nFrames)
	}
	energy := make([]float64, nFrames)
	buf := make([]complex128, stoiFFT)
	for m := range nFrames {
		var e float64
		for i := range buf {
			buf[i] = 0
		}
		for i := range stoiFrame {
			v := x[m*stoiHop+i] * win[i]
			buf[i] = complex(v, 0)
			e += v * v
		}
		energy[m] = 10 * math.Log10(e+1e-9)
		fft(buf)
		for j := range stoiNBands {
			var p float64
			for k := lo[j]; k < hi[j]; k++ {
				a := cmplx.Abs(buf[k])
				p += a * a
			}
			bands[j][m] = math.Sqrt(p)
		}
	}
	return bands, energy
}

// envelopeLag finds the frame lag of Y against X that best matches their
// log band envelopes summed over bands.
func envelopeLag(X, Y [][]float64) int {
	env := func(B [][]float64) []float64 {
		out := make([]float64, len(B[0]))
		for m := range out {
			var s float64
			for j := range B {
				s += B[j][m] * B[j][m]
			}
			out[m] = math.Log10(s + 1)
		}
		return out
	}
	ex, ey := env(X), env(Y)
	mean := func(v []float64) float64 {
		var s float64
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	mx, my := mean(ex), mean(ey)
	best, bestLag := math.Inf(-1), 0
	for lag := -len(ex) + stoiSegment; lag < len(ey)-stoiSegment; lag++ {
		var s float64
		n := 0
		for m := range ex {
			k := m + lag
			if k < 0 || k >= len(ey) {
				continue
			}
			s += (ex[m] - mx) * (ey[k] - my)
			n++
		}
		if n < len(ex)/2 {
			continue
		}
		if s > best {
			best, bestLag = s, lag
		}
	}
	return bestLag
}

// stoiScore averages the per-segment intermediate intelligibility over the
// speech frames of X, each segment at its best alignment in Ys (the
// received envelopes at sub-hop offsets) within ±stoiSearch frames.
func stoiScore(X [][]float64, Ys [][][]float64, energy []float64) float64 {
	maxE := math.Inf(-1)
	for _, e := range energy {
		maxE = max(maxE, e)
	}
	var keep []int // frames of X with speech
	for m, e := range energy {
		if e >= maxE-stoiDynamic {
			keep = append(keep, m)
		}
	}
	clip := math.Pow(10, -stoiBeta/20.0)
	var total float64
	var count int
	x := make([]float64, stoiSegment)
	y := make([]float64, stoiSegment)
	for s := stoiSegment; s <= len(keep); s++ {
		seg := keep[s-stoiSegment : s]
		best := math.Inf(-1)
		for _, Y := range Ys {
			for d := -stoiSearch; d <= stoiSearch; d++ {
				var sum float64
				ok := true
				for j := range stoiNBands {
					for i, m := range seg {
						k := m + d
						if k < 0 || k >= len(Y[j]) {
							ok = false
							break
						}
						x[i], y[i] = X[j][m], Y[j][k]
					}
					if !ok {
						break
					}
					sum += segmentCorrelation(x, y, clip)
				}
				if ok {
					best = max(best, sum/stoiNBands)
				}
			}
		}
		if !math.IsInf(best, -1) {
			total += best
			count++
		}
	}
	if count == 0 {
		return 0
	}
	return total / float64(count)
}

// segmentCorrelation normalises y to x's energy, clips it at clip times x,
// and returns the correlation coefficient of the two.
func segmentCorrelation(x, y []float64, clip float64) float64 {
	var nx, ny float64
	for i := range x {
		nx += x[i] * x[i]
		ny += y[i] * y[i]
	}
	alpha := math.Sqrt(nx / max(ny, 1e-12))
	yc := make([]float64, len(y))
	for i := range y {
		yc[i] = min(alpha*y[i], clip*x[i])
	}
	return pearson(x, yc)
}

func pearson(a, b []float64) float64 {
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma /= float64(len(a))
	mb /= float64(len(b))
	var sab, saa, sbb float64
	for i := range a {
		sab += (a[i] - ma) * (b[i] - mb)
		saa += (a[i] - ma) * (a[i] - ma)
		sbb += (b[i] - mb) * (b[i] - mb)
	}
	if saa == 0 || sbb == 0 {
		return 0
	}
	return sab / math.Sqrt(saa*sbb)
}

// peakCorrelation returns the lag, within ±search samples of lag, at which
// the normalised cross-correlation of x and y (over x's length) peaks,
// and the peak.
func peakCorrelation(x, y []float64, lag, search int) (int, float64) {
	best, bestLag := 0.0, lag
	for d := -search; d <= search; d++ {
		var sxy, sxx, syy float64
		for i := range x {
			k := i + lag + d
			if k < 0 || k >= len(y) {
				continue
			}
			sxy += x[i] * y[k]
			sxx += x[i] * x[i]
			syy += y[k] * y[k]
		}
		if sxx > 0 && syy > 0 {
			if c := sxy / math.Sqrt(sxx*syy); c > best {
				best, bestLag = c, lag+d
			}
		}
	}
	return bestLag, best
}

// segmentalCorrelation averages, over the 100 ms segments of x with
// speech, each one's peak correlation with y within ±100 ms of lag.
func segmentalCorrelation(x, y []float64, lag int) float64 {
	const seg, search = 1000, 1000 // samples at 10 kHz
	var energies []float64
	for i := 0; i+seg <= len(x); i += seg {
		var e float64
		for _, v := range x[i : i+seg] {
			e += v * v
		}
		energies = append(energies, e)
	}
	maxE := 0.0
	for _, e := range energies {
		maxE = max(maxE, e)
	}
	var sum float64
	n := 0
	for k, e := range energies {
		if e == 0 || 10*math.Log10(maxE/e) > 30 {
			continue
		}
		_, c := peakCorrelation(x[k*seg:(k+1)*seg], y, k*seg+lag, search)
		sum += c
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// fft is an in-place radix-2 decimation-in-time FFT; len(a) is a power of
// two.
func fft(a []complex128) {
	n := len(a)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			a[i], a[j] = a[j], a[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		w := cmplx.Exp(complex(0, -2*math.Pi/float64(size)))
		for start := 0; start < n; start += size {
			wk := complex(1, 0)
			for k := 0; k < size/2; k++ {
				u, v := a[start+k], a[start+k+size/2]*wk
				a[start+k], a[start+k+size/2] = u+v, u-v
				wk *= w
			}
		}
	}
}
