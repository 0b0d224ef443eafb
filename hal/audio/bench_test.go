package audio

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
)

// BenchmarkPulseRoundTrip measures the round trip of a click through a
// real PulseAudio: WriteFrame -> null sink -> its monitor -> ReadFrame, in
// the lockstep a call runs (one frame written per frame captured), at the
// default 40 ms playback target and 20 ms capture fragments. The reference
// is libpulse's own pacat and parec, run with the same buffer settings and
// the same lockstep through pipes. Metrics: the median wall-clock round
// trip (rt-ms) and the worst (max-rt-ms), the median in device samples
// (dev-ms: samples captured between the write and the click), clicks lost
// to underruns, and our sink's underruns.
func BenchmarkPulseRoundTrip(b *testing.B) {
	p := test.StartPulse(b)
	for _, rate := range []int{8000, 16000} {
		b.Run(fmt.Sprintf("%d/ours", rate), func(b *testing.B) {
			src, sink := openPair(b, p, rate)
			roundTrips(b, src, sink, rate)
			b.ReportMetric(float64(sink.Stats().Underruns), "underruns")
			b.Logf("the server's accounting of our streams:\n%s", serverLatency(b, p))
		})
		b.Run(fmt.Sprintf("%d/reference", rate), func(b *testing.B) {
			src := &rawSource{r: p.Parec(b, test.PulseSpeakerMonitor, rate, defaultPulseLatency/2)}
			// As openPair does: let the idle null sink adopt the capture
			// latency before playback starts.
			if _, err := src.ReadFrame(make([]int16, FrameSamplesAt(rate))); err != nil {
				b.Fatalf("parec: %v", err)
			}
			sink := &rawSink{w: p.Pacat(b, test.PulseSpeaker, rate, defaultPulseLatency)}
			roundTrips(b, src, sink, rate)
		})
	}
}

// rawSource reads S16LE frames from a pipe (parec's output).
type rawSource struct {
	r   io.Reader
	raw []byte
}

func (s *rawSource) ReadFrame(buf []int16) (int, error) {
	if cap(s.raw) < 2*len(buf) {
		s.raw = make([]byte, 2*len(buf))
	}
	raw := s.raw[:2*len(buf)]
	if _, err := io.ReadFull(s.r, raw); err != nil {
		return 0, err
	}
	for i := range buf {
		buf[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return len(buf), nil
}

// rawSink writes S16LE frames to a pipe (pacat's input).
type rawSink struct {
	w   io.Writer
	raw []byte
}

func (s *rawSink) WriteFrame(buf []int16) error {
	s.raw = s.raw[:0]
	for _, v := range buf {
		s.raw = binary.LittleEndian.AppendUint16(s.raw, uint16(v))
	}
	_, err := s.w.Write(s.raw)
	return err
}

// roundTrips plays b.N clicks, half a second apart after half a second of
// warm-up, and reports their round trip. A click lost to an underrun
// (the server skips audio that arrives after its due time) is counted in
// the "lost" metric rather than failing the run.
func roundTrips(b *testing.B, src Source, sink Sink, rate int) {
	fs := FrameSamplesAt(rate)
	const every = 25 // frames between clicks: longer than any round trip
	clicks := b.N
	b.ResetTimer()
	rec, readAt, wroteAt := lockstep(b, src, sink, rate, (clicks+2)*every, func(i int, frame []int16) {
		if i%every == 0 && i/every >= 1 && i/every <= clicks {
			frame[0] = math.MaxInt16
		}
	})
	b.StopTimer()
	var lat, dev []float64
	seen := map[int]bool{}
	for _, peak := range clickPeaks(rec, rate) {
		// The click written last before the frame that holds the peak.
		fi, off := peak/fs, peak%fs
		wi := (fi - 1) / every * every
		if wi < every || wi/every > clicks || seen[wi] {
			continue
		}
		seen[wi] = true
		arrived := readAt[fi].Add(-time.Duration(fs-1-off) * time.Second / time.Duration(rate))
		lat = append(lat, float64(arrived.Sub(wroteAt[wi]))/float64(time.Millisecond))
		// Device time: samples captured between reading frame wi (just
		// before the write) and the click.
		dev = append(dev, ms(peak-(wi+1)*fs, rate))
	}
	if len(lat) == 0 {
		b.Fatalf("none of %d clicks came back", clicks)
	}
	slices.Sort(lat)
	slices.Sort(dev)
	b.ReportMetric(lat[len(lat)/2], "rt-ms")
	b.ReportMetric(dev[len(dev)/2], "dev-ms")
	b.ReportMetric(lat[len(lat)-1], "max-rt-ms")
	b.ReportMetric(float64(clicks-len(lat)), "lost")
	b.ReportMetric(0, "ns/op") // one op is half a second of audio, not a cost
}

// clickPeaks returns the sample index of each click: the largest sample
// of every burst above a quarter of full scale (the resampler spreads a
// one-sample click over a few samples and rings).
func clickPeaks(rec []int16, rate int) []int {
	var peaks []int
	guard := rate / 200 // 5 ms
	for i := 0; i < len(rec); i++ {
		if abs16(rec[i]) < math.MaxInt16/4 {
			continue
		}
		peak := i
		for j := i; j < min(i+guard, len(rec)); j++ {
			if abs16(rec[j]) > abs16(rec[peak]) {
				peak = j
			}
		}
		peaks = append(peaks, peak)
		i += guard
	}
	return peaks
}

func ms(samples, rate int) float64 { return float64(samples) * 1000 / float64(rate) }

func abs16(v int16) int {
	if v < 0 {
		return -int(v)
	}
	return int(v)
}

// BenchmarkPulseFrame measures the per-frame cost of WriteFrame and
// ReadFrame on the call's goroutine (queueing and wake-up, without the
// server round trip), beside the floor: copying the frame.
func BenchmarkPulseFrame(b *testing.B) {
	for _, rate := range []int{8000, 16000} {
		fs := FrameSamplesAt(rate)
		frame := make([]int16, fs)
		dst := make([]int16, fs)
		b.Run(fmt.Sprintf("write/%d/ours", rate), func(b *testing.B) {
			s := detachedSink(b, rate)
			b.ReportAllocs()
			b.SetBytes(int64(2 * fs))
			for b.Loop() {
				if err := s.WriteFrame(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("read/%d/ours", rate), func(b *testing.B) {
			s := detachedSource(b, rate)
			raw := make([]byte, 2*fs)
			b.ReportAllocs()
			b.SetBytes(int64(2 * fs))
			for b.Loop() {
				s.onData(raw)
				if _, err := s.ReadFrame(dst); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("copy/%d/reference", rate), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(2 * fs))
			for b.Loop() {
				copy(dst, frame)
			}
		})
	}
}

// detachedSink is a PulseSink with no server behind it: WriteFrame's own
// work (lock, queue, wake the sender) without the sender's socket write.
func detachedSink(tb testing.TB, rate int) *PulseSink {
	cfg, err := newPulseConfig(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &PulseSink{pulseStream: newPulseStream(&cfg, rate, "playback")}
}

// detachedSource is a PulseSource fed by calling onData, as the library's
// read goroutine does.
func detachedSource(tb testing.TB, rate int) *PulseSource {
	cfg, err := newPulseConfig(nil)
	if err != nil {
		tb.Fatal(err)
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &PulseSource{pulseStream: newPulseStream(&cfg, rate, "capture"), timeout: time.Second, timer: t, conv: make([]int16, 2048)}
}

// TestPulseFrameAllocs holds the hot path to zero allocations per frame.
func TestPulseFrameAllocs(t *testing.T) {
	const rate = 16000
	fs := FrameSamplesAt(rate)
	frame := make([]int16, fs)
	sink := detachedSink(t, rate)
	if a := testing.AllocsPerRun(200, func() { _ = sink.WriteFrame(frame) }); a != 0 {
		t.Errorf("WriteFrame allocates %v times per frame, want 0", a)
	}
	src := detachedSource(t, rate)
	raw := make([]byte, 2*fs)
	if a := testing.AllocsPerRun(200, func() {
		src.onData(raw)
		_, _ = src.ReadFrame(frame)
	}); a != 0 {
		t.Errorf("onData+ReadFrame allocate %v times per frame, want 0", a)
	}
	// A ReadFrame that has to wait arms the reused timer: still no
	// allocation.
	go func() {
		for range 200 {
			time.Sleep(time.Millisecond)
			src.onData(raw)
		}
	}()
	if a := testing.AllocsPerRun(100, func() { _, _ = src.ReadFrame(frame) }); a != 0 {
		t.Errorf("waiting ReadFrame allocates %v times per frame, want 0", a)
	}
}

// serverLatency extracts the latency lines pactl reports for the open
// streams (buffer latency in the stream, device latency of the sink or
// source).
func serverLatency(tb testing.TB, p *test.Pulse) string {
	var sb strings.Builder
	for _, what := range []string{"sink-inputs", "source-outputs"} {
		for _, l := range strings.Split(p.Pactl(tb, "list", what), "\n") {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "Buffer Latency") || strings.HasPrefix(l, "Sink Latency") ||
				strings.HasPrefix(l, "Source Latency") || strings.HasPrefix(l, "media.name") {
				sb.WriteString("  " + l + "\n")
			}
		}
	}
	return sb.String()
}
