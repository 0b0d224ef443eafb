package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// FuzzParseWAV feeds arbitrary files to the header parser. Property: no
// panic, and an accepted layout lies inside the file with a sane format.
//
//fuzz:budget 400000
func FuzzParseWAV(f *testing.F) {
	f.Add(wavBytes(1, 1, 16, 8000, nil, make([]byte, 320)))
	f.Add(wavBytes(1, 2, 16, 44100, append([]byte("LIST"), 3, 0, 0, 0, 'a', 'b', 'c', 0), make([]byte, 8)))
	f.Add(append(wavHeader(8000, 0), 1, 2))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVE"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lay, err := parseWAV(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if lay.DataOff < 12 || lay.DataOff > int64(len(b)) {
			t.Fatalf("data offset %d outside file of %d bytes", lay.DataOff, len(b))
		}
		if lay.DataLen >= 0 && lay.DataOff+lay.DataLen > int64(len(b)) {
			t.Fatalf("data %d+%d runs past file of %d bytes", lay.DataOff, lay.DataLen, len(b))
		}
		if lay.DataLen < 0 && binary.LittleEndian.Uint32(b[lay.DataOff-4:]) != unknownLen {
			t.Fatalf("open-ended data without the 0xFFFFFFFF marker")
		}
		if lay.Format.Channels < 1 || lay.Format.Bits%8 != 0 || lay.Format.Bits == 0 {
			t.Fatalf("accepted format %+v", lay.Format)
		}
	})
}

// chunkReader returns its data in reads of the sizes in steps (cycled),
// as a socket may.
type chunkReader struct {
	data  []byte
	steps []byte
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := 1 + int(r.steps[r.i%len(r.steps)])
	r.i++
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// FuzzPulseFrames feeds arbitrary server bytes, split at arbitrary read
// boundaries, through the framing check. Properties: bytes pass through
// unchanged; the stream is refused exactly when a descriptor announces a
// frame over the limit or shared memory, and nothing of that descriptor
// is passed on.
//
//fuzz:budget 150000
func FuzzPulseFrames(f *testing.F) {
	desc := func(length, flags uint32) []byte {
		d := make([]byte, 20)
		binary.BigEndian.PutUint32(d[0:], length)
		binary.BigEndian.PutUint32(d[4:], 0xFFFFFFFF)
		binary.BigEndian.PutUint32(d[16:], flags)
		return d
	}
	f.Add(append(desc(4, 0), 1, 2, 3, 4), []byte{3})
	f.Add(append(desc(0, 0), desc(2, 0)...), []byte{0, 7})
	f.Add(desc(maxTestFrame+1, 0), []byte{19})
	f.Add(desc(1, pulseFlagSHMData), []byte{5, 1})
	f.Fuzz(func(t *testing.T, data, steps []byte) {
		if len(steps) == 0 {
			steps = []byte{255}
		}
		var reported error
		fr := &frameReader{r: &chunkReader{data: data, steps: steps}, max: maxTestFrame,
			onErr: func(err error) { reported = err }}
		var out []byte
		buf := make([]byte, 300)
		var err error
		for err == nil {
			var n int
			n, err = fr.Read(buf)
			out = append(out, buf[:n]...)
		}
		if reported != err {
			t.Fatalf("onErr got %v, Read returned %v", reported, err)
		}
		if !bytes.HasPrefix(data, out) {
			t.Fatalf("frameReader altered the bytes")
		}
		// Walk the frames of the input to find the first bad descriptor.
		bad := -1
		for pos := 0; pos+20 <= len(data); {
			length := binary.BigEndian.Uint32(data[pos:])
			flags := binary.BigEndian.Uint32(data[pos+16:])
			if length > maxTestFrame || flags&pulseFlagSHMData != 0 {
				bad = pos
				break
			}
			pos += 20 + int(length)
		}
		switch {
		case bad < 0 && err != io.EOF:
			t.Fatalf("well-framed input refused: %v", err)
		case bad >= 0 && !errors.Is(err, errProtocol):
			t.Fatalf("bad descriptor at %d passed, Read ended with %v", bad, err)
		case bad >= 0 && len(out) > bad+20:
			t.Fatalf("passed %d bytes, past the bad descriptor at %d", len(out), bad)
		}
	})
}

const maxTestFrame = 64
