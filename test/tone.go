package test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"testing"
	"time"
)

// toneAmplitude is the peak of generated tones, half of full scale so that
// codecs and resamplers do not clip.
const toneAmplitude = 0.5 * math.MaxInt16

// WriteToneWAV writes a 16-bit mono PCM WAV file of a sine at freqHz lasting
// dur, sampled at rate Hz (0 means 8000).
func WriteToneWAV(t testing.TB, path string, freqHz float64, dur time.Duration, rate int) {
	t.Helper()
	if rate == 0 {
		rate = 8000
	}
	n := int(dur.Seconds() * float64(rate))
	samples := make([]int16, n)
	for i := range samples {
		samples[i] = int16(toneAmplitude * math.Sin(2*math.Pi*freqHz*float64(i)/float64(rate)))
	}
	if err := os.WriteFile(path, encodeWAV(samples, rate), 0o644); err != nil {
		t.Fatalf("WriteToneWAV: %v", err)
	}
}

// encodeWAV builds a canonical 44-byte-header PCM WAV:
//
//	"RIFF" size "WAVE"
//	"fmt " 16 | format=1 channels=1 rate byterate blockalign=2 bits=16
//	"data" size | samples, little-endian int16
func encodeWAV(samples []int16, rate int) []byte {
	data := 2 * len(samples)
	b := make([]byte, 0, 44+data)
	le := binary.LittleEndian
	b = append(b, "RIFF"...)
	b = le.AppendUint32(b, uint32(36+data))
	b = append(b, "WAVEfmt "...)
	b = le.AppendUint32(b, 16)
	b = le.AppendUint16(b, 1) // PCM
	b = le.AppendUint16(b, 1) // mono
	b = le.AppendUint32(b, uint32(rate))
	b = le.AppendUint32(b, uint32(2*rate))
	b = le.AppendUint16(b, 2)
	b = le.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = le.AppendUint32(b, uint32(data))
	for _, s := range samples {
		b = le.AppendUint16(b, uint16(s))
	}
	return b
}

// ReadWAV reads a 16-bit PCM WAV file. Several channels are averaged into
// one.
func ReadWAV(path string) (samples []int16, rate int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	samples, rate, err = decodeWAV(b)
	if err != nil {
		return nil, 0, fmt.Errorf("read WAV %s: %w", path, err)
	}
	return samples, rate, nil
}

func decodeWAV(b []byte) ([]int16, int, error) {
	le := binary.LittleEndian
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, errors.New("not a RIFF WAVE file")
	}
	var channels, bits, format uint16
	var rate uint32
	var haveFmt bool
	for off := 12; off+8 <= len(b); {
		id := string(b[off : off+4])
		size := int(le.Uint32(b[off+4 : off+8]))
		body := b[off+8:]
		// A writer killed mid-call leaves the data size unset or too big:
		// take what is there.
		if size > len(body) || size < 0 {
			size = len(body)
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, 0, fmt.Errorf("fmt chunk of %d bytes, want >= 16", size)
			}
			format, channels = le.Uint16(body[0:2]), le.Uint16(body[2:4])
			rate, bits = le.Uint32(body[4:8]), le.Uint16(body[14:16])
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, 0, errors.New("data chunk before fmt chunk")
			}
			// 0xFFFE is WAVE_FORMAT_EXTENSIBLE, as libsndfile may write.
			if (format != 1 && format != 0xFFFE) || bits != 16 || channels == 0 {
				return nil, 0, fmt.Errorf("format %#x, %d bits, %d channels; want 16-bit PCM", format, bits, channels)
			}
			frame := 2 * int(channels)
			samples := make([]int16, len(body)/frame)
			for i := range samples {
				var sum int
				for c := 0; c < int(channels); c++ {
					sum += int(int16(le.Uint16(body[i*frame+2*c:])))
				}
				samples[i] = int16(sum / int(channels))
			}
			return samples, int(rate), nil
		}
		off += 8 + size + size%2 // chunks are padded to even sizes
	}
	return nil, 0, errors.New("no data chunk")
}

// Goertzel returns the power |X(f)|² of samples at frequency freq, the
// squared magnitude of their discrete-time Fourier transform there. freq need
// not fall on a DFT bin.
func Goertzel(samples []int16, rate int, freq float64) float64 {
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - coeff*s1*s2
}

// DetectTone returns the share of the energy of samples that lies at freq,
// from 0 to about 1: a clean sine at freq gives about 1, silence or other
// sounds about 0. It works on 100 ms blocks, so packet loss or jitter-buffer
// gaps, which break the phase of the tone between blocks, do not hide it.
func DetectTone(samples []int16, rate int, freq float64) (ratio float64) {
	block := rate / 10
	if block < 1 {
		return 0
	}
	var tone, total float64
	for off := 0; off+block <= len(samples); off += block {
		b := samples[off : off+block]
		// Parseval: Σ|X_k|² = N·Σx², and a real sine puts its power in the
		// bins at +f and -f, so 2|X(f)|²/N is the energy of the sine.
		tone += 2 * Goertzel(b, rate, freq) / float64(block)
		for _, x := range b {
			total += float64(x) * float64(x)
		}
	}
	if total == 0 {
		return 0
	}
	return tone / total
}
