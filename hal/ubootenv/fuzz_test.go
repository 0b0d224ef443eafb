package ubootenv

import (
	"hash/crc32"
	"maps"
	"testing"
)

// FuzzDecode feeds arbitrary blocks (with a valid CRC patched in, so the
// parser behind the CRC is reached) to Decode. Properties: no panic, and
// whatever decodes re-encodes into a block that decodes to the same
// variables and flags.
//
//fuzz:budget 250000
func FuzzDecode(f *testing.F) {
	seed := func(vars map[string]string, redundant bool, flags byte) {
		b, err := Encode(vars, 256, redundant, flags)
		if err != nil {
			f.Fatalf("seed: %v", err)
		}
		f.Add(b, redundant, false)
	}
	seed(map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}, true, 3)
	seed(map[string]string{"bootcmd": "run distro_bootcmd", "bootdelay": "0"}, false, 0)
	f.Add([]byte("\x00\x00\x00\x00a=1\x00junk\x00=x\x00a=2\x00\x00"), false, true)
	f.Add([]byte("\x00\x00\x00\x00\x01unterminated"), true, true)
	f.Fuzz(func(t *testing.T, block []byte, redundant, patchCRC bool) {
		if patchCRC && len(block) >= MinSize {
			block = withCRC(block, redundant)
		}
		vars, flags, err := Decode(block, redundant)
		if err != nil {
			return
		}
		if !redundant {
			flags = 0
		}
		again, err := Encode(vars, len(block), redundant, flags)
		if err != nil {
			// Skipped pairs (no '=') can make the original longer than the
			// re-encoding, never shorter, so it always fits.
			t.Fatalf("Encode(Decode(block)) error %v", err)
		}
		vars2, flags2, err := Decode(again, redundant)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(block))) error %v", err)
		}
		if !maps.Equal(vars, vars2) || flags != flags2 {
			t.Fatalf("round trip: %v flags %d, then %v flags %d", vars, flags, vars2, flags2)
		}
	})
}

func withCRC(block []byte, redundant bool) []byte {
	b := append([]byte(nil), block...)
	hdr := headerLen(redundant)
	sum := crc32IEEE(b[hdr:])
	b[0], b[1], b[2], b[3] = byte(sum), byte(sum>>8), byte(sum>>16), byte(sum>>24)
	return b
}

func crc32IEEE(b []byte) uint32 { return crc32.ChecksumIEEE(b) }
