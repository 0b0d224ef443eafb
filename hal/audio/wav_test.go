package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestWAVRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tone.wav")
	sink, err := CreateWAV(path, SampleRate)
	if err != nil {
		t.Fatalf("CreateWAV: %v", err)
	}
	want := make([]int16, 0, 1000)
	frame := make([]int16, FrameSamples)
	for f := 0; f < 6; f++ {
		for i := range frame {
			frame[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(f*FrameSamples+i)/SampleRate))
		}
		if err := sink.WriteFrame(frame); err != nil {
			t.Fatalf("WriteFrame: %v", err)
		}
		want = append(want, frame...)
	}
	// An odd-sized last frame tests the short read at the end.
	if err := sink.WriteFrame([]int16{-32768, 32767, 1}); err != nil {
		t.Fatalf("WriteFrame: %v", err)
	}
	want = append(want, -32768, 32767, 1)
	if err := sink.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sink.Close(); !errors.Is(err, errClosedWAV) {
		t.Fatalf("second Close = %v, want errClosedWAV", err)
	}
	if err := sink.WriteFrame(frame); !errors.Is(err, errClosedWAV) {
		t.Fatalf("WriteFrame after Close = %v, want errClosedWAV", err)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, w := len(raw), wavHeaderLen+2*len(want); got != w {
		t.Fatalf("file size = %d, want %d", got, w)
	}
	if got := binary.LittleEndian.Uint32(raw[40:44]); got != uint32(2*len(want)) {
		t.Fatalf("data size in header = %d, want %d", got, 2*len(want))
	}
	if got := binary.LittleEndian.Uint32(raw[4:8]); got != uint32(36+2*len(want)) {
		t.Fatalf("riff size in header = %d, want %d", got, 36+2*len(want))
	}

	src, err := OpenWAV(path)
	if err != nil {
		t.Fatalf("OpenWAV: %v", err)
	}
	defer src.Close()
	if src.Rate() != SampleRate {
		t.Fatalf("Rate() = %d, want %d", src.Rate(), SampleRate)
	}
	var got []int16
	for {
		n, err := src.ReadFrame(frame)
		got = append(got, frame[:n]...)
		if errors.Is(err, io.EOF) {
			if n != 0 {
				t.Fatalf("ReadFrame returned %d samples with io.EOF, want 0", n)
			}
			break
		}
		if err != nil {
			t.Fatalf("ReadFrame: %v", err)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("read %d samples, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sample %d = %d, want %d", i, got[i], want[i])
		}
	}
}

// TestWAVHeaderLayout pins the canonical 44-byte PCM header byte for byte.
func TestWAVHeaderLayout(t *testing.T) {
	want := []byte{
		'R', 'I', 'F', 'F', 0x2c, 0, 0, 0, 'W', 'A', 'V', 'E',
		'f', 'm', 't', ' ', 16, 0, 0, 0, 1, 0, 1, 0,
		0x40, 0x1f, 0, 0, 0x80, 0x3e, 0, 0, 2, 0, 16, 0,
		'd', 'a', 't', 'a', 8, 0, 0, 0,
	}
	if got := wavHeader(8000, 8); !bytes.Equal(got, want) {
		t.Fatalf("wavHeader(8000, 8) = % x, want % x", got, want)
	}
}

func wavBytes(format, channels, bits uint16, rate uint32, extra []byte, data []byte) []byte {
	align := channels * bits / 8
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(0)) // bytes.Buffer writes cannot fail
	b.WriteString("WAVE")
	b.Write(extra)
	b.WriteString("fmt ")
	_ = binary.Write(&b, le, uint32(16))
	_ = binary.Write(&b, le, format)
	_ = binary.Write(&b, le, channels)
	_ = binary.Write(&b, le, rate)
	_ = binary.Write(&b, le, rate*uint32(align))
	_ = binary.Write(&b, le, align)
	_ = binary.Write(&b, le, bits)
	b.WriteString("data")
	_ = binary.Write(&b, le, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

func TestOpenWAVRefuses(t *testing.T) {
	list := append([]byte("LIST"), 3, 0, 0, 0, 'a', 'b', 'c', 0) // odd chunk with pad byte
	tests := []struct {
		name string
		file []byte
		want error
	}{
		{"stereo", wavBytes(1, 2, 16, 8000, nil, make([]byte, 8)), ErrUnsupportedFormat},
		{"8-bit", wavBytes(1, 1, 8, 8000, nil, make([]byte, 8)), ErrUnsupportedFormat},
		{"44.1 kHz", wavBytes(1, 1, 16, 44100, nil, make([]byte, 8)), ErrUnsupportedFormat},
		{"22.05 kHz", wavBytes(1, 1, 16, 22050, nil, make([]byte, 8)), ErrUnsupportedFormat},
		{"ok at 16 kHz", wavBytes(1, 1, 16, 16000, nil, make([]byte, 4)), nil},
		{"ok at 48 kHz", wavBytes(1, 1, 16, 48000, nil, make([]byte, 4)), nil},
		{"float", wavBytes(3, 1, 32, 8000, nil, make([]byte, 8)), ErrUnsupportedFormat},
		{"mu-law", wavBytes(7, 1, 8, 8000, nil, make([]byte, 8)), ErrUnsupportedFormat},
		{"not riff", []byte("RIFX\x00\x00\x00\x00WAVE"), errNotWAV},
		{"empty", nil, errNotWAV},
		{"no data", []byte("RIFF\x04\x00\x00\x00WAVE"), errNoData},
		{"chunk past end", append([]byte("RIFF\x00\x00\x00\x00WAVEjunk"), 0xff, 0xff, 0, 0), errBadChunk},
		{"data past end", func() []byte {
			b := wavBytes(1, 1, 16, 8000, nil, make([]byte, 4))
			binary.LittleEndian.PutUint32(b[40:], 1000)
			return b
		}(), errBadChunk},
		{"ok with list chunk", wavBytes(1, 1, 16, 8000, list, make([]byte, 4)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.wav")
			if err := os.WriteFile(path, tt.file, 0o600); err != nil {
				t.Fatal(err)
			}
			src, err := OpenWAV(path)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("OpenWAV = %v, want success", err)
				}
				buf := make([]int16, 8)
				if n, err := src.ReadFrame(buf); n != 2 || err != nil {
					t.Fatalf("ReadFrame = %d, %v, want 2, nil", n, err)
				}
				if err := src.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("OpenWAV = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestOpenWAVStreamingLength(t *testing.T) {
	b := wavBytes(1, 1, 16, 8000, nil, []byte{1, 0, 2, 0, 3, 0})
	binary.LittleEndian.PutUint32(b[40:], unknownLen)
	path := filepath.Join(t.TempDir(), "s.wav")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := OpenWAV(path)
	if err != nil {
		t.Fatalf("OpenWAV: %v", err)
	}
	defer src.Close()
	buf := make([]int16, 160)
	n, err := src.ReadFrame(buf)
	if n != 3 || err != nil || buf[0] != 1 || buf[2] != 3 {
		t.Fatalf("ReadFrame = %d, %v (%v), want 3 samples 1,2,3", n, err, buf[:n])
	}
	if n, err := src.ReadFrame(buf); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("ReadFrame at end = %d, %v, want 0, io.EOF", n, err)
	}
}

func TestCreateWAVRate(t *testing.T) {
	if _, err := CreateWAV(filepath.Join(t.TempDir(), "x.wav"), 0); !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("CreateWAV(rate 0) = %v, want ErrUnsupportedFormat", err)
	}
}
