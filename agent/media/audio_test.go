package media

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/hal/audio"
)

// ratedTone is a toneSource at any rate, as a sound device at that rate
// would deliver it.
type ratedTone struct {
	mu   sync.Mutex
	rate int
	freq float64
	amp  float64
	n    int
}

func (s *ratedTone) Rate() int { return s.rate }

func (s *ratedTone) ReadFrame(buf []int16) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range buf {
		buf[i] = int16(s.amp * math.Sin(2*math.Pi*s.freq*float64(s.n)/float64(s.rate)))
		s.n++
	}
	return len(buf), nil
}

// ratedSink is a collectSink at any rate.
type ratedSink struct {
	*collectSink
	rate int
}

func (s ratedSink) Rate() int { return s.rate }

// powerAt is the Goertzel power of freq in x sampled at rate.
func powerAt(x []int16, rate int, freq float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/float64(rate))
	var s1, s2 float64
	for _, v := range x {
		s0 := float64(v) + k*s1 - s2
		s2, s1 = s1, s0
	}
	return (s1*s1 + s2*s2 - k*s1*s2) / float64(len(x)*len(x))
}

// TestWidebandEndToEnd sends a 6 kHz tone, which only a wideband codec
// carries, from a 48 kHz source to a 16 kHz sink. With G.722 negotiated it
// arrives; forced to G.711 it cannot (8 kHz sampling ends at 4 kHz), which
// shows the audio really went through G.722 at 16 kHz and the rate
// conversions on both sides.
func TestWidebandEndToEnd(t *testing.T) {
	tests := []struct {
		name      string
		codecs    []Codec
		wantCodec string
		wantTone  bool
	}{
		{"g722", nil, "G722", true},
		{"pcmu only", []Codec{PCMU}, "PCMU", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfgA, cfgB := testConfig(t, "a", SecuritySDES), testConfig(t, "b", SecuritySDES)
			cfgB.Codecs = tt.codecs
			a, b := call(t, cfgA, cfgB, nil, nil)
			if a.Stats().Codec != tt.wantCodec || b.Stats().Codec != tt.wantCodec {
				t.Fatalf("codecs a %q b %q, want %s", a.Stats().Codec, b.Stats().Codec, tt.wantCodec)
			}
			sink := ratedSink{newCollectSink(25 * 320), 16000}
			b.SetSink(sink)
			// 6 kHz alone is inaudible in G.711: mix in a 1 kHz marker so the
			// sink starts collecting either way.
			a.SetSource(&mixSource{rate: 48000, tones: []float64{1000, 6000}, amp: 6000})
			got := sink.wait(t, "audio")[2*320:]
			p6, p1 := powerAt(got, 16000, 6000), powerAt(got, 16000, 1000)
			ratio := 10 * math.Log10(p6/p1)
			if tt.wantTone && ratio < -3 {
				t.Fatalf("6 kHz arrives %.1f dB under 1 kHz over %s, want within 3 dB", ratio, tt.wantCodec)
			}
			if !tt.wantTone && ratio > -30 {
				t.Fatalf("6 kHz arrives %.1f dB under 1 kHz over %s, want gone (under -30 dB)", ratio, tt.wantCodec)
			}
		})
	}
}

// mixSource sums equal-level tones at rate Hz.
type mixSource struct {
	mu    sync.Mutex
	rate  int
	tones []float64
	amp   float64
	n     int
}

func (s *mixSource) Rate() int { return s.rate }

func (s *mixSource) ReadFrame(buf []int16) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range buf {
		var v float64
		for _, f := range s.tones {
			v += s.amp * math.Sin(2*math.Pi*f*float64(s.n)/float64(s.rate))
		}
		buf[i] = int16(v)
		s.n++
	}
	return len(buf), nil
}

// TestMuteAndLevels: muting sends silence while packets keep flowing both
// ways (so the peer's inactivity timer never fires); unmuting brings the
// audio back; the levels in Stats follow, each direction.
func TestMuteAndLevels(t *testing.T) {
	a, b := call(t, testConfig(t, "a", SecuritySDES), testConfig(t, "b", SecuritySDES), nil, nil)
	// A 1 kHz tone of amplitude 8000: -15.2 dBFS RMS, -12.2 dBFS peak.
	a.SetSource(&ratedTone{rate: 16000, freq: 1000, amp: 8000})
	const wantRMS, wantPeak = -15.2, -12.2
	near := func(l Level) bool {
		return math.Abs(l.RMSdBFS-wantRMS) < 1 && math.Abs(l.PeakdBFS-wantPeak) < 1
	}
	waitFor(t, "a's send level and b's receive level to reach the tone's", func() bool {
		return near(a.Stats().SendLevel) && near(b.Stats().RecvLevel)
	})

	a.Mute()
	if !a.Muted() || !a.Stats().Muted {
		t.Fatalf("after Mute: Muted() %v Stats().Muted %v, want true", a.Muted(), a.Stats().Muted)
	}
	before := b.Stats().PacketsReceived
	waitFor(t, "b to hear silence from muted a", func() bool {
		return b.Stats().RecvLevel.PeakdBFS < -60 && a.Stats().SendLevel.PeakdBFS == MinDBFS
	})
	if after := b.Stats().PacketsReceived; after <= before+25 {
		t.Fatalf("b received %d packets during a second of mute, want a packet every 20 ms", after-before)
	}
	// Silence stays silence: nothing of the tone leaks while muted.
	fc := &frameCounter{}
	b.SetSink(fc)
	waitFor(t, "b to play 25 frames", func() bool { return fc.count() >= 25 })
	if n := fc.audibleCount(); n != 0 {
		t.Fatalf("b played %d audible frames of 25 while a was muted", n)
	}

	a.Unmute()
	if a.Muted() || a.Stats().Muted {
		t.Fatalf("after Unmute: still muted")
	}
	waitFor(t, "the tone back at b after unmute", func() bool { return near(b.Stats().RecvLevel) })
	if st := b.Stats(); st.SendLevel.PeakdBFS != MinDBFS {
		t.Fatalf("b sends %+v with no source, want the floor", st.SendLevel)
	}
}

// frameCounter counts the frames a sink is given and the audible ones.
type frameCounter struct {
	mu              sync.Mutex
	frames, audible int
}

func (f *frameCounter) WriteFrame(buf []int16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames++
	if audible(buf) {
		f.audible++
	}
	return nil
}

func (f *frameCounter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.frames
}

func (f *frameCounter) audibleCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.audible
}

// deviceSource behaves like a live microphone (hal/audio's PulseSource):
// it has a queue (Buffered) and its ReadFrame waits for the device's next
// frame. Until resume is called it is stalled, as a suspended source is:
// nothing queued, and ReadFrame gives up with audio.ErrStalled.
type deviceSource struct {
	mu      sync.Mutex
	resumed bool
	next    time.Time
	tone    ratedTone
}

func (d *deviceSource) Rate() int { return d.tone.rate }

func (d *deviceSource) Buffered() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.resumed {
		return 0
	}
	return d.tone.rate * frameMillis / 1000
}

func (d *deviceSource) resume() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.resumed, d.next = true, time.Now()
}

func (d *deviceSource) ReadFrame(buf []int16) (int, error) {
	d.mu.Lock()
	resumed := d.resumed
	d.next = d.next.Add(frameMillis * time.Millisecond)
	wait := time.Until(d.next)
	d.mu.Unlock()
	if !resumed {
		return 0, fmt.Errorf("no frame: %w", audio.ErrStalled)
	}
	time.Sleep(wait) // a device delivers a frame every 20 ms
	return d.tone.ReadFrame(buf)
}

// TestStalledMicrophone: a live microphone that delivers nothing does not
// stop the call: packets of silence keep going out on the timer (so the
// peer's inactivity timer does not fire), and once the microphone
// delivers, its audio is sent again.
func TestStalledMicrophone(t *testing.T) {
	a, b := call(t, testConfig(t, "a", SecuritySDES), testConfig(t, "b", SecuritySDES), nil, nil)
	mic := &deviceSource{tone: ratedTone{rate: 16000, freq: 1000, amp: 8000}}
	a.SetSource(mic)
	start := b.Stats().PacketsReceived
	waitFor(t, "a second of packets from a stalled microphone", func() bool {
		return b.Stats().PacketsReceived >= start+50
	})
	if lvl := b.Stats().RecvLevel; lvl.PeakdBFS > -60 {
		t.Fatalf("b hears %+v from a stalled microphone, want silence", lvl)
	}
	mic.resume()
	waitFor(t, "the microphone's tone at b", func() bool { return b.Stats().RecvLevel.RMSdBFS > -20 })
}
