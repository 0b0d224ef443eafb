package credstore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"

	"github.com/hardphone/hardphone/hal/tpm"
)

// kekLen is the KEK size: 256 bits, sealed as it is.
const kekLen = 32

// The KEK record says how the KEK is protected. It is stored twice (keys
// kek.0 and kek.1 of the meta bucket) so a damaged copy loses nothing:
//
//	 0       5      6      7           15        19        23
//	+-------+------+------+-----------+---------+---------+
//	|"HPKEK"| 0x01 | prot | generation| counter | PCR mask|
//	|       | fmt  | u8   | u64 BE    | u32 BE  | u32 BE  |
//	+-------+------+------+-----------+---------+---------+
//	then five u16-BE-length-prefixed fields:
//	  SRK name | PCR values (32 B each, ascending) | sealed public | sealed private | check
//	then SHA-256 of everything before it (32 B).
//
// prot is 1 (TPM) or 2 (software); generation and counter are the NV
// counter value and index the sealed KEK is bound to; bit i of the PCR mask
// selects PCR i of the SHA-256 bank. check is HKDF(KEK, "check"), which
// tells the right KEK from a wrong one without decrypting anything. The
// trailing hash only tells damage from tampering in reports; the TPM's own
// integrity check and the check value are what protect the KEK.
type kekRecord struct {
	protection   Protection
	generation   uint64
	counterIndex uint32
	pcrs         []int
	srkName      []byte
	pcrValues    [][]byte
	sealed       tpm.Blob
	check        []byte
}

const kekMagic = "HPKEK"

var kekKeys = [2][]byte{[]byte("kek.0"), []byte("kek.1")}

func (r *kekRecord) marshal() []byte {
	var mask uint32
	for _, p := range r.pcrs {
		mask |= 1 << p
	}
	b := []byte(kekMagic)
	b = append(b, 1, byte(r.protection))
	b = binary.BigEndian.AppendUint64(b, r.generation)
	b = binary.BigEndian.AppendUint32(b, r.counterIndex)
	b = binary.BigEndian.AppendUint32(b, mask)
	for _, f := range [][]byte{r.srkName, bytes.Join(r.pcrValues, nil), r.sealed.Public, r.sealed.Private, r.check} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

func parseKEKRecord(b []byte) (*kekRecord, error) {
	const fixed = len(kekMagic) + 2 + 8 + 4 + 4
	if len(b) < fixed+sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes", errShort, len(b))
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return nil, errors.New("checksum mismatch (damaged)")
	}
	if string(body[:len(kekMagic)]) != kekMagic || body[5] != 1 {
		return nil, fmt.Errorf("magic %q format %d, want %q 1", body[:len(kekMagic)], body[5], kekMagic)
	}
	r := &kekRecord{
		protection:   Protection(body[6]),
		generation:   binary.BigEndian.Uint64(body[7:]),
		counterIndex: binary.BigEndian.Uint32(body[15:]),
	}
	if r.protection != ProtectionTPM && r.protection != ProtectionSoftware {
		return nil, fmt.Errorf("protection %d unknown", r.protection)
	}
	mask := binary.BigEndian.Uint32(body[19:])
	if mask>>tpm.NumPCRs != 0 {
		return nil, fmt.Errorf("PCR mask 0x%08x selects PCRs above %d", mask, tpm.NumPCRs-1)
	}
	for i := 0; i < tpm.NumPCRs; i++ {
		if mask&(1<<i) != 0 {
			r.pcrs = append(r.pcrs, i)
		}
	}
	rest := body[fixed:]
	var fields [5][]byte
	for i := range fields {
		if len(rest) < 2 {
			return nil, fmt.Errorf("%w: field %d length", errShort, i)
		}
		n := int(binary.BigEndian.Uint16(rest))
		if len(rest) < 2+n {
			return nil, fmt.Errorf("%w: field %d wants %d bytes, %d left", errShort, i, n, len(rest)-2)
		}
		fields[i] = bytes.Clone(rest[2 : 2+n])
		rest = rest[2+n:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(rest))
	}
	r.srkName = fields[0]
	if len(fields[1]) != bits.OnesCount32(mask)*sha256.Size {
		return nil, fmt.Errorf("PCR values are %d bytes for %d PCRs", len(fields[1]), bits.OnesCount32(mask))
	}
	for v := fields[1]; len(v) > 0; v = v[sha256.Size:] {
		r.pcrValues = append(r.pcrValues, v[:sha256.Size])
	}
	r.sealed = tpm.Blob{Public: fields[2], Private: fields[3]}
	r.check = fields[4]
	if len(r.check) != sha256.Size {
		return nil, fmt.Errorf("check value is %d bytes, want %d", len(r.check), sha256.Size)
	}
	return r, nil
}

// keys are what the store derives from the KEK. The KEK itself is zeroed
// as soon as they exist.
type keys struct {
	aead  cipher.AEAD
	check []byte
}

// LogValue keeps keys out of logs.
func (*keys) LogValue() slog.Value { return slog.StringValue(redacted) }

// deriveKeys derives, with HKDF-SHA256 (RFC 5869), the AES-256-GCM store
// key and the check value, and zeroes kek. One key per purpose: the KEK
// never encrypts anything itself.
func deriveKeys(kek []byte) (*keys, error) {
	defer clear(kek)
	if len(kek) != kekLen {
		return nil, fmt.Errorf("KEK is %d bytes, want %d", len(kek), kekLen)
	}
	encKey, err := hkdf.Key(sha256.New, kek, nil, "hardphone credstore v1 aead", 32)
	if err != nil {
		return nil, err
	}
	defer clear(encKey)
	check, err := hkdf.Key(sha256.New, kek, nil, "hardphone credstore v1 check", sha256.Size)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &keys{aead: aead, check: check}, nil
}

// verify reports whether k came from the KEK rec was made for.
func (k *keys) verify(rec *kekRecord) error {
	if subtle.ConstantTimeCompare(k.check, rec.check) != 1 {
		return errKEKCheck
	}
	return nil
}
