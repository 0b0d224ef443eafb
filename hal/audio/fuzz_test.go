package audio

import (
	"bytes"
	"encoding/binary"
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
