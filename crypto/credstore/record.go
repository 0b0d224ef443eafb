package credstore

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"
)

// A record is one encrypted entry (a credential value, the identity key,
// the certificate chain) as stored under its name in a bucket:
//
//	 0        1          9          17         25        37
//	+--------+----------+----------+----------+---------+---------------------+
//	| format | version  | created  | updated  | nonce   | ciphertext || tag   |
//	| 0x01   | u64 BE   | i64 BE   | i64 BE   | 12 B    | len(plaintext)+16 B |
//	+--------+----------+----------+----------+---------+---------------------+
//
// created and updated are Unix nanoseconds. The ciphertext is AES-256-GCM
// under the store key with associated data
//
//	"hardphone/credstore/v1" 0x00 | bucket | 0x00 | u16 BE len(name) | name | record[0:25]
//
// so the header (version, times) is authenticated, and a record moved to
// another name or bucket, or given another version, fails to open.
const (
	recordFormat = 1
	headerLen    = 25
	nonceLen     = 12
	tagLen       = 16
	adPrefix     = "hardphone/credstore/v1\x00"

	maxNameLen  = 255
	maxValueLen = 64 << 10
)

// header is a record's authenticated metadata.
type header struct {
	version uint64
	created time.Time
	updated time.Time
}

func (h header) marshal() []byte {
	b := make([]byte, headerLen)
	b[0] = recordFormat
	binary.BigEndian.PutUint64(b[1:], h.version)
	binary.BigEndian.PutUint64(b[9:], uint64(h.created.UnixNano()))
	binary.BigEndian.PutUint64(b[17:], uint64(h.updated.UnixNano()))
	return b
}

// parseHeader reads a header without authenticating it; only openRecord's
// result may be trusted.
func parseHeader(rec []byte) (header, error) {
	if len(rec) < headerLen+nonceLen+tagLen {
		return header{}, fmt.Errorf("%w: %d bytes, want at least %d", errShort, len(rec), headerLen+nonceLen+tagLen)
	}
	if rec[0] != recordFormat {
		return header{}, fmt.Errorf("record format %d, want %d", rec[0], recordFormat)
	}
	return header{
		version: binary.BigEndian.Uint64(rec[1:]),
		created: time.Unix(0, int64(binary.BigEndian.Uint64(rec[9:]))),
		updated: time.Unix(0, int64(binary.BigEndian.Uint64(rec[17:]))),
	}, nil
}

func additionalData(bucket, name string, hdr []byte) []byte {
	ad := make([]byte, 0, len(adPrefix)+len(bucket)+3+len(name)+len(hdr))
	ad = append(ad, adPrefix...)
	ad = append(ad, bucket...)
	ad = append(ad, 0)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(name)))
	ad = append(ad, name...)
	return append(ad, hdr...)
}

// sealRecord encrypts plaintext as the record for name in bucket. The nonce
// is random: a store makes few enough records under one key that 96-bit
// random nonces never collide in practice (NIST SP 800-38D §8.3 allows
// 2^32 invocations).
func sealRecord(aead cipher.AEAD, bucket, name string, h header, plaintext []byte) ([]byte, error) {
	hdr := h.marshal()
	rec := make([]byte, headerLen+nonceLen, headerLen+nonceLen+len(plaintext)+tagLen)
	copy(rec, hdr)
	if _, err := rand.Read(rec[headerLen:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(rec, rec[headerLen:headerLen+nonceLen], plaintext, additionalData(bucket, name, hdr)), nil
}

// openRecord authenticates and decrypts a record stored under name in
// bucket.
func openRecord(aead cipher.AEAD, bucket, name string, rec []byte) (header, []byte, error) {
	h, err := parseHeader(rec)
	if err != nil {
		return header{}, nil, err
	}
	nonce := rec[headerLen : headerLen+nonceLen]
	pt, err := aead.Open(nil, nonce, rec[headerLen+nonceLen:], additionalData(bucket, name, rec[:headerLen]))
	if err != nil {
		return header{}, nil, fmt.Errorf("fails authentication (altered, moved from another name, or from another store)")
	}
	return h, pt, nil
}

// checkName accepts 1-255 bytes of UTF-8 without control characters, such
// as "sip/alice".
func checkName(name string) error {
	if len(name) == 0 || len(name) > maxNameLen {
		return fmt.Errorf("%w: %d bytes, want 1..%d", errBadName, len(name), maxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not UTF-8", errBadName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control character %U", errBadName, r)
		}
	}
	return nil
}
