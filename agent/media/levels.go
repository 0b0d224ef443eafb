package media

import (
	"math"
	"sync/atomic"
)

// Level is an audio level over the last second, in dBFS: 0 is a full-scale
// square wave, a full-scale sine is -3 RMS, and MinDBFS stands for silence
// (or for no audio yet).
type Level struct {
	// RMSdBFS is the root-mean-square level.
	RMSdBFS float64 `json:"rms_dbfs"`
	// PeakdBFS is the largest absolute sample.
	PeakdBFS float64 `json:"peak_dbfs"`
}

// MinDBFS is the floor of every Level: below one 16-bit step (-90.3 dBFS)
// and finite, so it survives JSON.
const MinDBFS = -96.0

// levelWindow is how many 20 ms frames a Level covers: one second.
const levelWindow = 50

// levelMeter measures the frames one direction of a call carries. The
// audio goroutine of that direction calls add; Stats reads level from any
// goroutine.
type levelMeter struct {
	// Written by add only.
	sq    [levelWindow]float64 // sum of squares per frame
	n     [levelWindow]int     // samples per frame
	peak  [levelWindow]int32
	i     int
	count int
	// The published level: float64 bits.
	rms, pk atomic.Uint64
}

func newLevelMeter() *levelMeter {
	m := &levelMeter{}
	m.rms.Store(math.Float64bits(MinDBFS))
	m.pk.Store(math.Float64bits(MinDBFS))
	return m
}

// add accounts one frame and publishes the level of the last second.
func (m *levelMeter) add(pcm []int16) {
	var sq float64
	var pk int32
	for _, s := range pcm {
		v := int32(s)
		sq += float64(v) * float64(v)
		if v < 0 {
			v = -v
		}
		pk = max(pk, v)
	}
	m.sq[m.i], m.n[m.i], m.peak[m.i] = sq, len(pcm), pk
	m.i = (m.i + 1) % levelWindow
	m.count = min(m.count+1, levelWindow)
	var tsq float64
	var tn int
	var tpk int32
	for k := 0; k < m.count; k++ {
		tsq += m.sq[k]
		tn += m.n[k]
		tpk = max(tpk, m.peak[k])
	}
	rms := MinDBFS
	if tn > 0 {
		rms = dBFS(math.Sqrt(tsq / float64(tn)))
	}
	m.rms.Store(math.Float64bits(rms))
	m.pk.Store(math.Float64bits(dBFS(float64(tpk))))
}

// level returns the last published level.
func (m *levelMeter) level() Level {
	return Level{RMSdBFS: math.Float64frombits(m.rms.Load()), PeakdBFS: math.Float64frombits(m.pk.Load())}
}

// dBFS converts an amplitude (RMS or peak, in 16-bit steps) to dBFS,
// floored at MinDBFS.
func dBFS(a float64) float64 {
	if a <= 0 {
		return MinDBFS
	}
	return max(20*math.Log10(a/32768), MinDBFS)
}

// frameQuiet reports whether a frame is below quietDBFS RMS: a pause in
// speech, where the jitter buffer may stretch or compress unheard.
func frameQuiet(pcm []int16) bool {
	var sq float64
	for _, s := range pcm {
		sq += float64(s) * float64(s)
	}
	return len(pcm) == 0 || dBFS(math.Sqrt(sq/float64(len(pcm)))) < quietDBFS
}

// quietDBFS is the RMS level under which a frame counts as a pause:
// speech on a phone line sits around -20 to -30 dBFS, and a pause in it
// (room noise through a headset microphone) well under -45.
const quietDBFS = -45.0
