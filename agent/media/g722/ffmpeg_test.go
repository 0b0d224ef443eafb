package g722

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/hardphone/hardphone/test"
)

// The reference is Debian's ffmpeg (libavcodec's G.722), started as a
// program: raw 16 kHz s16le PCM in, a raw G.722 octet stream out, and back.
// -trellis 0 is ffmpeg's default and is named anyway: with trellis search
// ffmpeg's encoder picks codewords by rate-distortion over several samples,
// a choice G.722 leaves to the encoder, and its stream would then differ
// from any sample-by-sample encoder while still decoding everywhere.

func ffmpegEncode(t testing.TB, pcm []int16) []byte {
	t.Helper()
	out, _ := test.RunFFmpeg(t, s16le(pcm), "-loglevel", "error",
		"-f", "s16le", "-ar", "16000", "-ac", "1", "-i", "pipe:0",
		"-c:a", "g722", "-trellis", "0", "-f", "g722", "pipe:1")
	return out
}

func ffmpegDecode(t testing.TB, stream []byte) []int16 {
	t.Helper()
	out, _ := test.RunFFmpeg(t, stream, "-loglevel", "error",
		"-f", "g722", "-i", "pipe:0", "-f", "s16le", "-ac", "1", "-ar", "16000", "pipe:1")
	return fromS16le(out)
}

// firstDiff returns the index of the first differing element and how many
// differ, or -1 and 0; a length mismatch counts as a difference at the
// shorter length.
func firstDiff[E comparable](got, want []E) (first, count int) {
	first = -1
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			if first < 0 {
				first = i
			}
			count++
		}
	}
	if len(got) != len(want) {
		if first < 0 {
			first = min(len(got), len(want))
		}
		count += max(len(got), len(want)) - min(len(got), len(want))
	}
	return first, count
}

// TestInteropFFmpeg checks, on all test signals one after another in one
// stream (so that the coders also cross from clipping to silence, from
// noise to a quiet tone), that
//   - our encoder writes the same octets as ffmpeg's,
//   - our decoder turns ffmpeg's stream into the same samples as ffmpeg's
//     decoder, and
//   - ffmpeg's decoder turns our stream into the same samples as ours.
//
// All three are exact: no tolerance. One stream keeps it to three ffmpeg
// runs; a difference is reported with the signal it falls in.
func TestInteropFFmpeg(t *testing.T) {
	sigs := testSignals()
	var pcm []int16
	for _, s := range sigs {
		pcm = append(pcm, s.pcm...)
	}
	// where names the signal that sample (or, with perOctet, octet) i
	// belongs to.
	where := func(i int, perOctet bool) string {
		if perOctet {
			i *= 2
		}
		if i < 0 || i/signalSamples >= len(sigs) {
			return "past the end"
		}
		return sigs[i/signalSamples].name
	}

	ours := NewEncoder().Encode(nil, pcm)
	theirs := ffmpegEncode(t, pcm)
	if first, n := firstDiff(ours, theirs); n != 0 {
		t.Errorf("Encode: %d of %d octets differ from ffmpeg's, first at %d (in %s; len %d, want %d)",
			n, len(theirs), first, where(first, true), len(ours), len(theirs))
	}

	got, want := NewDecoder().Decode(nil, theirs), ffmpegDecode(t, theirs)
	if first, n := firstDiff(got, want); n != 0 {
		t.Errorf("Decode(ffmpeg's stream): %d of %d samples differ from ffmpeg's decoder, first at %d (in %s)",
			n, len(want), first, where(first, false))
	}

	got, want = NewDecoder().Decode(nil, ours), ffmpegDecode(t, ours)
	if first, n := firstDiff(got, want); n != 0 {
		t.Errorf("ffmpeg decoding our stream: %d of %d samples differ from our decoder, first at %d (in %s)",
			n, len(want), first, where(first, false))
	}
	t.Logf("%d signals, %d samples, %d octets: identical to ffmpeg in all three directions", len(sigs), len(pcm), len(ours))
}

// TestInteropFFmpegOddTail: ffmpeg's encoder, at the end of its input,
// pads a lone last sample into a final octet; ours holds it for the next
// call instead (Encoder.Held). Everything before that octet agrees.
func TestInteropFFmpegOddTail(t *testing.T) {
	pcm := testSignals()[5].pcm[:2*FrameSamples20ms+1]
	e := NewEncoder()
	ours := e.Encode(nil, pcm)
	theirs := ffmpegEncode(t, pcm)
	if len(theirs) != len(pcm)/2+1 {
		t.Fatalf("ffmpeg encoded %d samples to %d octets, want %d", len(pcm), len(theirs), len(pcm)/2+1)
	}
	if !e.Held() || !bytes.Equal(ours, theirs[:len(ours)]) {
		t.Fatalf("Encode(%d samples) = %d octets, held %v; want ffmpeg's first %d octets and the last sample held",
			len(pcm), len(ours), e.Held(), len(pcm)/2)
	}
}

// TestDecodeHostileMatchesFFmpeg decodes octet streams no encoder would
// write: uniformly random octets (including codewords 0..3, which encoders
// never send), long runs of one codeword that drive the scale factors and
// predictor coefficients to their limits, and a stream found by search that
// pushes the zero section of the predictor past 16 bits, where fixed-point
// implementations part ways. Ours must give ffmpeg's samples for all of
// them.
func TestDecodeHostileMatchesFFmpeg(t *testing.T) {
	rng := rand.New(rand.NewPCG(0x6722, 2))
	random := make([]byte, 64000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var runs []byte
	for c := range 256 {
		for range 300 {
			runs = append(runs, byte(c))
		}
	}
	// Alternating extremes: the largest negative and positive codewords of
	// both bands in bursts.
	var bursts []byte
	for i := range 32000 {
		if (i/37)%2 == 0 {
			bursts = append(bursts, 0x04)
		} else {
			bursts = append(bursts, 0xA0|byte(rng.Uint32())&0x40)
		}
	}
	overflow, err := os.ReadFile("testdata/zero_section_overflow.g722")
	if err != nil {
		t.Fatalf("read seed stream: %v", err)
	}
	if !reachesWideZeroSection(overflow) {
		t.Fatalf("testdata/zero_section_overflow.g722 no longer drives |sz| past 32767; the case it covers is gone")
	}
	for _, tt := range []struct {
		name   string
		stream []byte
	}{
		{"random", random},
		{"runs_of_each_codeword", runs},
		{"bursts_of_extremes", bursts},
		{"zero_section_overflow", overflow},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, want := NewDecoder().Decode(nil, tt.stream), ffmpegDecode(t, tt.stream)
			if first, n := firstDiff(got, want); n != 0 {
				t.Errorf("Decode(%s): %d of %d samples differ from ffmpeg, first at %d", tt.name, n, len(want), first)
			}
		})
	}
}

// reachesWideZeroSection reports whether decoding stream drives the lower
// band's zero-section output beyond the 16-bit range at some octet.
func reachesWideZeroSection(stream []byte) bool {
	d := NewDecoder()
	for i := range stream {
		d.Decode(nil, stream[i:i+1])
		if d.low.pred.sz > 32767 || d.low.pred.sz < -32768 || d.high.pred.sz > 32767 || d.high.pred.sz < -32768 {
			return true
		}
	}
	return false
}
