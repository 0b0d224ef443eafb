package audio

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// The canonical header CreateWAV writes (little-endian, RIFF/WAVE):
//
//	 0 "RIFF"            4 riff size = 36 + data size
//	 8 "WAVE"           12 "fmt "        16 fmt size = 16
//	20 format = 1 (PCM) 22 channels = 1  24 sample rate
//	28 byte rate        32 block align   34 bits per sample = 16
//	36 "data"           40 data size     44 samples, int16 LE
const (
	wavHeaderLen    = 44
	wavFormatPCM    = 1
	wavFormatExtens = 0xFFFE
	maxWAVChunks    = 64
	// maxDataLen keeps the RIFF size (36 + data) inside a uint32.
	maxDataLen = 0xFFFFFFFF - 36
	// unknownLen marks a data chunk written by a streaming tool that never
	// fixed its header up: read it to the end of the file.
	unknownLen = 0xFFFFFFFF
)

// pcmSubFormat is the tail of KSDATAFORMAT_SUBTYPE_PCM after its leading
// format code, as carried by WAVE_FORMAT_EXTENSIBLE.
var pcmSubFormat = [14]byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

// wavFormat is what a fmt chunk says about the samples.
type wavFormat struct {
	Channels, Bits int
	Rate           int
}

// wavLayout locates the samples inside a file.
type wavLayout struct {
	Format  wavFormat
	DataOff int64
	// DataLen is the sample byte count, or -1 when the header left it open
	// and the samples run to the end of the file.
	DataLen int64
}

// parseWAV reads the RIFF header and chunk list of a file of size bytes.
// Every chunk size is checked against what is left of the file, so a header
// cannot make it seek or read outside the file.
func parseWAV(r io.ReadSeeker, size int64) (wavLayout, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return wavLayout{}, fmt.Errorf("read RIFF header: %w", errNotWAV)
	}
	if string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return wavLayout{}, fmt.Errorf("magic %q/%q: %w", hdr[0:4], hdr[8:12], errNotWAV)
	}
	var (
		out    wavLayout
		haveFm bool
		pos    = int64(12)
	)
	for i := 0; i < maxWAVChunks; i++ {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			return wavLayout{}, fmt.Errorf("chunk header at %d: %w", pos, errNoData)
		}
		pos += 8
		id := string(ch[0:4])
		n := int64(binary.LittleEndian.Uint32(ch[4:8]))
		left := size - pos
		switch id {
		case "fmt ":
			if n < 16 || n > 40 || n > left {
				return wavLayout{}, fmt.Errorf("fmt chunk size %d (file has %d left): %w", n, left, errBadChunk)
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(r, buf); err != nil {
				return wavLayout{}, fmt.Errorf("read fmt chunk: %w", errBadChunk)
			}
			f, err := parseFmt(buf)
			if err != nil {
				return wavLayout{}, err
			}
			out.Format, haveFm = f, true
		case "data":
			if !haveFm {
				return wavLayout{}, fmt.Errorf("data chunk before fmt chunk: %w", errBadChunk)
			}
			out.DataOff = pos
			switch {
			case n <= left:
				out.DataLen = n
			case n == unknownLen:
				out.DataLen = -1
			default:
				return wavLayout{}, fmt.Errorf("data chunk size %d, file has %d left: %w", n, left, errBadChunk)
			}
			return out, nil
		default:
			// RIFF pads chunks to an even length.
			skip := n + n&1
			if skip > left {
				return wavLayout{}, fmt.Errorf("chunk %q size %d, file has %d left: %w", id, n, left, errBadChunk)
			}
			if _, err := r.Seek(skip, io.SeekCurrent); err != nil {
				return wavLayout{}, fmt.Errorf("skip chunk %q: %w", id, err)
			}
			pos += skip
			continue
		}
		pos += n
		if n&1 == 1 {
			if _, err := r.Seek(1, io.SeekCurrent); err != nil {
				return wavLayout{}, fmt.Errorf("skip pad byte: %w", err)
			}
			pos++
		}
	}
	return wavLayout{}, fmt.Errorf("more than %d chunks before data: %w", maxWAVChunks, errBadChunk)
}

func parseFmt(b []byte) (wavFormat, error) {
	le := binary.LittleEndian
	code := le.Uint16(b[0:2])
	f := wavFormat{
		Channels: int(le.Uint16(b[2:4])),
		Rate:     int(le.Uint32(b[4:8])),
		Bits:     int(le.Uint16(b[14:16])),
	}
	byteRate, align := le.Uint32(b[8:12]), le.Uint16(b[12:14])
	switch code {
	case wavFormatPCM:
	case wavFormatExtens:
		// WAVEFORMATEXTENSIBLE: cbSize(2) validBits(2) channelMask(4) GUID(16).
		if len(b) < 40 || le.Uint16(b[24:26]) != wavFormatPCM || [14]byte(b[26:40]) != pcmSubFormat {
			return wavFormat{}, fmt.Errorf("extensible fmt chunk is not PCM: %w", ErrUnsupportedFormat)
		}
	default:
		return wavFormat{}, fmt.Errorf("format code %#x, want PCM (1): %w", code, ErrUnsupportedFormat)
	}
	if f.Channels < 1 || f.Bits == 0 || f.Bits%8 != 0 || f.Rate == 0 {
		return wavFormat{}, fmt.Errorf("fmt chunk channels=%d bits=%d rate=%d: %w", f.Channels, f.Bits, f.Rate, errBadChunk)
	}
	wantAlign := f.Channels * f.Bits / 8
	if int(align) != wantAlign || int64(byteRate) != int64(f.Rate)*int64(wantAlign) {
		return wavFormat{}, fmt.Errorf("fmt chunk block align %d byte rate %d disagree with %d ch %d bit %d Hz: %w",
			align, byteRate, f.Channels, f.Bits, f.Rate, errBadChunk)
	}
	return f, nil
}

// WAVSource reads mono 16-bit PCM samples from a WAV file at one of the
// device rates (8, 16, 32 or 48 kHz).
type WAVSource struct {
	mu   sync.Mutex // guards all fields
	f    *os.File   // nil after Close
	r    *bufio.Reader
	rate int // immutable
	// left is the number of sample bytes still to read, or -1 to read to EOF.
	left int64
	raw  []byte
}

// OpenWAV opens a WAV file for reading. The file must hold PCM samples,
// 16-bit, mono, at 8000, 16000, 32000 or 48000 Hz (a call converts those
// to its codec's rate, see Rate): anything else is ErrUnsupportedFormat.
func OpenWAV(path string) (*WAVSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open wav: %w", err)
	}
	src, err := newWAVSource(f)
	if err != nil {
		// The parse error is what matters; a close error on a read-only file
		// adds nothing.
		_ = f.Close()
		return nil, fmt.Errorf("open wav %s: %w", path, err)
	}
	return src, nil
}

func newWAVSource(f *os.File) (*WAVSource, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	lay, err := parseWAV(f, st.Size())
	if err != nil {
		return nil, err
	}
	if lay.Format.Channels != 1 || lay.Format.Bits != 16 || checkRate(int(lay.Format.Rate)) != nil {
		return nil, fmt.Errorf("%d ch %d bit %d Hz, want 1 ch 16 bit at one of %v Hz: %w",
			lay.Format.Channels, lay.Format.Bits, lay.Format.Rate, deviceRates, ErrUnsupportedFormat)
	}
	if _, err := f.Seek(lay.DataOff, io.SeekStart); err != nil {
		return nil, fmt.Errorf("seek to samples: %w", err)
	}
	return &WAVSource{f: f, r: bufio.NewReader(f), left: lay.DataLen, rate: int(lay.Format.Rate)}, nil
}

// Rate is the file's sample rate in Hz.
func (s *WAVSource) Rate() int { return s.rate }

// ReadFrame implements Source.
func (s *WAVSource) ReadFrame(buf []int16) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return 0, errClosedWAV
	}
	want := int64(len(buf)) * 2
	if s.left >= 0 && want > s.left {
		want = s.left &^ 1
	}
	if want == 0 {
		return 0, io.EOF
	}
	if int64(cap(s.raw)) < want {
		s.raw = make([]byte, want)
	}
	raw := s.raw[:want]
	got, err := io.ReadFull(s.r, raw)
	got &^= 1
	if s.left >= 0 {
		s.left -= int64(got)
	}
	n := got / 2
	for i := 0; i < n; i++ {
		buf[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		s.left = 0
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	default:
		return n, fmt.Errorf("read wav samples: %w", err)
	}
}

// Close closes the file.
func (s *WAVSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errClosedWAV
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("close wav: %w", err)
	}
	return nil
}

// WAVSink writes mono 16-bit PCM samples to a WAV file. The header's sizes
// are fixed up on Close: a file that was never closed says it holds no
// samples.
type WAVSink struct {
	mu   sync.Mutex // guards all fields
	f    *os.File   // nil after Close
	w    *bufio.Writer
	n    int64 // sample bytes written
	raw  []byte
	rate int
}

// CreateWAV creates (or truncates) path and writes a WAV header for mono
// 16-bit PCM at rate Hz. The file is created 0600: it holds call audio.
func CreateWAV(path string, rate int) (*WAVSink, error) {
	if rate < 1000 || rate > 384000 {
		return nil, fmt.Errorf("create wav: rate %d Hz outside 1000..384000: %w", rate, ErrUnsupportedFormat)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create wav: %w", err)
	}
	s := &WAVSink{f: f, w: bufio.NewWriter(f), rate: rate}
	if _, err := s.w.Write(wavHeader(rate, 0)); err != nil {
		_ = f.Close() // the write error is the one to report
		return nil, fmt.Errorf("create wav %s: write header: %w", path, err)
	}
	return s, nil
}

// wavHeader returns the canonical 44-byte header for dataLen sample bytes.
func wavHeader(rate int, dataLen uint32) []byte {
	h := make([]byte, wavHeaderLen)
	le := binary.LittleEndian
	copy(h[0:4], "RIFF")
	le.PutUint32(h[4:8], 36+dataLen)
	copy(h[8:12], "WAVE")
	copy(h[12:16], "fmt ")
	le.PutUint32(h[16:20], 16)
	le.PutUint16(h[20:22], wavFormatPCM)
	le.PutUint16(h[22:24], 1)
	le.PutUint32(h[24:28], uint32(rate))
	le.PutUint32(h[28:32], uint32(rate)*2)
	le.PutUint16(h[32:34], 2)
	le.PutUint16(h[34:36], 16)
	copy(h[36:40], "data")
	le.PutUint32(h[40:44], dataLen)
	return h
}

// WriteFrame implements Sink.
func (s *WAVSink) WriteFrame(buf []int16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errClosedWAV
	}
	if s.n+int64(len(buf))*2 > maxDataLen {
		return fmt.Errorf("write wav: %w", errTooLarge)
	}
	if cap(s.raw) < 2*len(buf) {
		s.raw = make([]byte, 2*len(buf))
	}
	raw := s.raw[:2*len(buf)]
	for i, v := range buf {
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(v))
	}
	if _, err := s.w.Write(raw); err != nil {
		return fmt.Errorf("write wav samples: %w", err)
	}
	s.n += int64(len(raw))
	return nil
}

// Rate is the file's sample rate in Hz.
func (s *WAVSink) Rate() int { return s.rate }

// Close flushes the samples, writes the final sizes into the header, syncs
// and closes the file.
func (s *WAVSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errClosedWAV
	}
	f := s.f
	s.f = nil
	var errs []error
	if err := s.w.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("flush: %w", err))
	}
	if _, err := f.WriteAt(wavHeader(s.rate, uint32(s.n)), 0); err != nil {
		errs = append(errs, fmt.Errorf("fix up header: %w", err))
	}
	if err := f.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("sync: %w", err))
	}
	if err := f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close wav: %w", err)
	}
	return nil
}
