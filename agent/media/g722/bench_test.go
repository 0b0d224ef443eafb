package g722

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
)

// benchFrame is one 20 ms frame of a 1 kHz tone at -6 dBFS; the tone's
// period divides the frame, so repeating the frame is a continuous tone.
func benchFrame() []int16 {
	return testSignals()[1].pcm[:FrameSamples20ms]
}

// referenceFrames is how much audio ffmpeg codes per measurement: 120 s,
// long enough that its start-up cost is small beside the coding and that
// -benchmark's millisecond resolution is well below 1 %.
const referenceFrames = 6000

// BenchmarkCodec encodes and decodes one 20 ms frame (320 samples, 160
// octets) with this package (/ours), beside ffmpeg's G.722 encoder and
// decoder coding the same signal, 6000 frames in one run each (/reference).
// Both report cpu-ns/frame, CPU time (user+system) per frame, which a busy
// machine does not inflate the way it does wall time (ns/op): for ours the
// process's rusage around the loop, for ffmpeg what the encode and decode
// processes spent, from -benchmark, over the frames. ffmpeg's figure
// includes ffmpeg's own per-frame pipeline (demuxing, AVFrame handling,
// muxing) and start-up, so /reference_pcm_io measures that part alone: the
// same two runs with PCM in place of G.722.
func BenchmarkCodec(b *testing.B) {
	frame := benchFrame()
	b.Run("ours", func(b *testing.B) {
		e, d := NewEncoder(), NewDecoder()
		enc := make([]byte, 0, FrameSamples20ms/2)
		dec := make([]int16, 0, FrameSamples20ms)
		b.ReportAllocs()
		b.SetBytes(2 * FrameSamples20ms)
		start := cpuTime(b)
		for b.Loop() {
			enc = e.Encode(enc[:0], frame)
			dec = d.Decode(dec[:0], enc)
		}
		b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/frame")
	})

	dir := b.TempDir()
	in := filepath.Join(dir, "in.raw")
	long := make([]int16, 0, referenceFrames*FrameSamples20ms)
	for range referenceFrames {
		long = append(long, frame...)
	}
	if err := os.WriteFile(in, s16le(long), 0o644); err != nil {
		b.Fatalf("write reference input: %v", err)
	}
	pcm := []string{"-f", "s16le", "-ar", "16000", "-ac", "1"}
	reference := func(b *testing.B, codec, coded []string) {
		codedPath := filepath.Join(dir, "coded")
		out := filepath.Join(dir, "out.raw")
		b.SetBytes(2 * FrameSamples20ms * referenceFrames)
		common := []string{"-nostats", "-loglevel", "info", "-benchmark", "-y"}
		var cpu float64
		for b.Loop() {
			_, enc := test.RunFFmpeg(b, nil, slices.Concat(common, pcm, []string{"-i", in}, codec, coded, []string{codedPath})...)
			_, dec := test.RunFFmpeg(b, nil, slices.Concat(common, coded, []string{"-i", codedPath}, pcm, []string{out})...)
			cpu += ffmpegCPUSeconds(b, enc) + ffmpegCPUSeconds(b, dec)
		}
		b.ReportMetric(cpu*1e9/float64(b.N*referenceFrames), "cpu-ns/frame")
	}
	b.Run("reference", func(b *testing.B) {
		reference(b, []string{"-c:a", "g722", "-trellis", "0"}, []string{"-f", "g722"})
	})
	b.Run("reference_pcm_io", func(b *testing.B) {
		reference(b, []string{"-c:a", "pcm_s16le"}, pcm)
	})
}

// cpuTime is the CPU time (user+system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var benchLine = regexp.MustCompile(`bench: utime=([0-9.]+)s stime=([0-9.]+)s`)

// ffmpegCPUSeconds reads user+system CPU seconds from ffmpeg's -benchmark
// line.
func ffmpegCPUSeconds(b *testing.B, stderr []byte) float64 {
	b.Helper()
	m := benchLine.FindSubmatch(stderr)
	if m == nil {
		b.Fatalf("ffmpeg -benchmark printed no bench line:\n%s", stderr)
	}
	var sum float64
	for _, v := range m[1:] {
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			b.Fatalf("ffmpeg bench line %q: %v", m[0], err)
		}
		sum += f
	}
	return sum
}
