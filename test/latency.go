package test

// Mouth-to-ear timing: an impulse train goes into a call, and the wall
// time each impulse passes a point is taken where the audio is handed
// over: a Source's ReadFrame, a Sink's WriteFrame, or a frame appearing
// in a WAV file a peer writes as it goes (baresip's sndfile module, which
// dumps what it encodes and what it decodes).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"sync"
	"testing"
	"time"
)

// Impulse train parameters: a 10 ms, 1 kHz burst at -6 dBFS every period,
// silence between.
const (
	impulseMillis    = 10
	impulseAmplitude = 16384
	// onsetLevel and quietLevel: an onset is the first sample above
	// onsetLevel after a stretch of at least onsetQuiet under quietLevel
	// (and nothing above onsetLevel since).
	onsetLevel = 4000
	quietLevel = 1000
	onsetQuiet = 200 * time.Millisecond
)

// ImpulseTrain returns count impulses period apart at rate Hz, the first
// after lead.
func ImpulseTrain(rate int, lead, period time.Duration, count int) []int16 {
	n := int((lead + time.Duration(count)*period).Seconds() * float64(rate))
	out := make([]int16, n)
	burst := rate * impulseMillis / 1000
	for k := range count {
		start := int((lead + time.Duration(k)*period).Seconds() * float64(rate))
		for i := 0; i < burst && start+i < n; i++ {
			out[start+i] = int16(impulseAmplitude * math.Sin(2*math.Pi*1000*float64(i)/float64(rate)))
		}
	}
	return out
}

// Onsets finds the impulses in a stream of frames and when each passed.
// A captured frame (capture true: a microphone's, or what a sender
// encodes) holds samples that ended when it was handed over; a played
// frame (what a receiver decodes) holds samples that start playing when
// it is handed over. It is safe for concurrent use.
type Onsets struct {
	mu      sync.Mutex
	rate    int
	capture bool
	quiet   int  // samples under quietLevel in a row
	armed   bool // onsetQuiet of quiet has passed since the last onset
	times   []time.Time
	changed chan struct{}
}

// NewOnsets returns an onset finder for a stream at rate Hz.
func NewOnsets(rate int, capture bool) *Onsets {
	return &Onsets{rate: rate, capture: capture, changed: make(chan struct{}, 1)}
}

// Frame accounts samples handed over at at.
func (o *Onsets) Frame(pcm []int16, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	need := int(onsetQuiet.Seconds() * float64(o.rate))
	for i, v := range pcm {
		a := int(v)
		if a < 0 {
			a = -a
		}
		if o.quiet >= need {
			// Armed: the ringing a codec puts before a sharp rise (above
			// quietLevel, under onsetLevel) does not disarm it.
			o.armed = true
		}
		if a > onsetLevel && o.armed {
			o.armed = false
			var when time.Time
			if o.capture {
				when = at.Add(-time.Duration(len(pcm)-i) * time.Second / time.Duration(o.rate))
			} else {
				when = at.Add(time.Duration(i) * time.Second / time.Duration(o.rate))
			}
			o.times = append(o.times, when)
			select {
			case o.changed <- struct{}{}:
			default:
			}
		}
		if a < quietLevel {
			o.quiet++
		} else {
			o.quiet = 0
		}
	}
}

// Wait returns the time of onset k (from 0), failing the test after
// timeout.
func (o *Onsets) Wait(t testing.TB, k int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		o.mu.Lock()
		if len(o.times) > k {
			at := o.times[k]
			o.mu.Unlock()
			return at
		}
		n := len(o.times)
		o.mu.Unlock()
		select {
		case <-o.changed:
		case <-deadline:
			t.Fatalf("onset %d not seen within %v (%d seen)", k, timeout, n)
		}
	}
}

// Count is the number of onsets seen so far.
func (o *Onsets) Count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.times)
}

// TailWAV follows a 16-bit mono WAV file that another program is writing,
// polling it every millisecond, and hands each batch of new samples to o
// with the time it was first seen, until the test ends. The file need not
// exist yet.
func TailWAV(t testing.TB, path string, o *Onsets) {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var f *os.File
		defer func() {
			if f != nil {
				f.Close()
			}
		}()
		dataOff := int64(-1)
		var off int64
		buf := make([]byte, 64<<10)
		var odd []byte
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if f == nil {
				var err error
				if f, err = os.Open(path); err != nil {
					continue
				}
			}
			if dataOff < 0 {
				if dataOff = wavDataOffset(f); dataOff < 0 {
					continue
				}
				off = dataOff
			}
			n, err := f.ReadAt(buf, off)
			if n == 0 {
				if err != nil && !errors.Is(err, io.EOF) {
					return
				}
				continue
			}
			at := time.Now()
			off += int64(n)
			b := append(odd, buf[:n]...)
			pcm := make([]int16, len(b)/2)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
			}
			odd = append([]byte(nil), b[2*len(pcm):]...)
			o.Frame(pcm, at)
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// wavDataOffset finds where a WAV file's samples start, or -1 if its
// header is not all there yet.
func wavDataOffset(f *os.File) int64 {
	hdr := make([]byte, 4096)
	n, _ := f.ReadAt(hdr, 0)
	hdr = hdr[:n]
	if len(hdr) < 12 || string(hdr[:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return -1
	}
	for i := 12; i+8 <= len(hdr); {
		id := string(hdr[i : i+4])
		size := int(binary.LittleEndian.Uint32(hdr[i+4:]))
		if id == "data" {
			return int64(i + 8)
		}
		if size < 0 || i+8+size > len(hdr) {
			return -1
		}
		i += 8 + size + size%2
	}
	return -1
}

// Latencies returns the mouth-to-ear times of the ear's onsets from..to-1,
// waiting up to timeout for each: each is matched with the mouth's latest
// onset before it, so an impulse one side missed or saw twice does not
// shift the pairs (the impulses must be further apart than the latency).
func Latencies(t testing.TB, mouth, ear *Onsets, from, to int, timeout time.Duration) []time.Duration {
	t.Helper()
	var out []time.Duration
	for k := from; k < to; k++ {
		e := ear.Wait(t, k, timeout)
		mouth.mu.Lock()
		var m time.Time
		for _, at := range mouth.times {
			if !at.After(e) {
				m = at
			}
		}
		mouth.mu.Unlock()
		if !m.IsZero() {
			out = append(out, e.Sub(m))
		}
	}
	return out
}

// DurationStats describes a set of measurements: median, smallest and
// largest, in milliseconds.
func DurationStats(ds []time.Duration) (median, lo, hi float64, s string) {
	if len(ds) == 0 {
		return 0, 0, 0, "no samples"
	}
	v := make([]float64, len(ds))
	for i, d := range ds {
		v[i] = float64(d.Microseconds()) / 1000
	}
	sort.Float64s(v)
	median, lo, hi = v[len(v)/2], v[0], v[len(v)-1]
	return median, lo, hi, fmt.Sprintf("median %.1f ms (%.1f..%.1f, %d impulses)", median, lo, hi, len(v))
}
