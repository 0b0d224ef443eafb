package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
)

// Prefix starts every sealed value of format version 1.
const Prefix = "hps1."

// Bounds.
const (
	// MaxPlaintext bounds a sealed secret.
	MaxPlaintext = 4096
	// MaxDeviceID and MaxName bound the context strings.
	MaxDeviceID = 64
	MaxName     = 128
	// MaxEncoded bounds a sealed value's text.
	MaxEncoded = len(Prefix) + (headerLen+MaxPlaintext+tagLen+2)/3*4 + 4
)

// The binary box inside the base64url text:
//
//	| 0x01 | version u64 BE | ephemeral point (65) | nonce (12) | AES-256-GCM ciphertext || tag (16) |
//	  \______________________ header (86 bytes) _________________/
//
// The ephemeral point is SEC 1 §2.3.3 uncompressed (0x04 || X || Y).
const (
	formatV1  = 0x01
	pointLen  = 65
	nonceLen  = 12
	tagLen    = 16
	headerLen = 1 + 8 + pointLen + nonceLen
	keyLen    = 32
)

// hkdfInfo is the HKDF info string (RFC 5869 §3.2: binds the key to its
// use); aadLabel starts the associated data.
const (
	hkdfInfo = "hardphone sealed secret v1"
	aadLabel = "hardphone-sealed-v1"
)

// Context is what a sealed value is bound to besides the recipient key.
type Context struct {
	// DeviceID is the fleet's device ID of the phone.
	DeviceID string
	// Version is the configuration document version the value was sealed
	// for; the phone refuses one older than what it holds for Name.
	Version uint64
	// Name is the credential-store name the value goes under
	// ("sip/alice").
	Name string
}

// Validate checks the context's fields are present and bounded.
func (c Context) Validate() error {
	switch {
	case c.DeviceID == "" || len(c.DeviceID) > MaxDeviceID:
		return fmt.Errorf("%w: device ID of %d bytes, want 1..%d", errContext, len(c.DeviceID), MaxDeviceID)
	case c.Name == "" || len(c.Name) > MaxName:
		return fmt.Errorf("%w: name of %d bytes, want 1..%d", errContext, len(c.Name), MaxName)
	case c.Version == 0:
		return fmt.Errorf("%w: version 0", errContext)
	}
	return nil
}

// aad is the GCM associated data: the header (format, version, ephemeral
// point, nonce) and the context, each string length-prefixed so no two
// contexts encode alike.
//
//	"hardphone-sealed-v1" | header | u16 BE len | device ID | u64 BE version | u16 BE len | name
func (c Context) aad(header []byte) []byte {
	b := make([]byte, 0, len(aadLabel)+len(header)+2+len(c.DeviceID)+8+2+len(c.Name))
	b = append(b, aadLabel...)
	b = append(b, header...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.DeviceID)))
	b = append(b, c.DeviceID...)
	b = binary.BigEndian.AppendUint64(b, c.Version)
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Name)))
	return append(b, c.Name...)
}

// ParsePublicKey reads a sealing public key: DER SubjectPublicKeyInfo of a
// NIST P-256 key (what the fleet stores and the phone reports).
func ParsePublicKey(spki []byte) (*ecdh.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, fmt.Errorf("sealing public key: %w", err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("sealing public key is %T, want ECDSA/ECDH P-256", pub)
	}
	k, err := ec.ECDH()
	if err != nil {
		return nil, fmt.Errorf("sealing public key: %w", err)
	}
	if k.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("sealing public key on %v, want P-256", k.Curve())
	}
	return k, nil
}

// MarshalPublicKey encodes a P-256 key as DER SubjectPublicKeyInfo.
func MarshalPublicKey(k *ecdh.PublicKey) ([]byte, error) {
	if k == nil || k.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("sealing public key: want P-256")
	}
	return x509.MarshalPKIXPublicKey(k)
}

// Seal encrypts plaintext so that only the holder of recipient's private
// key can open it, bound to c.
func Seal(recipient *ecdh.PublicKey, c Context, plaintext []byte) (string, error) {
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	nonce := make([]byte, nonceLen)
	// crypto/rand.Read never returns an error.
	_, _ = rand.Read(nonce)
	return seal(recipient, eph, nonce, c, plaintext)
}

// seal is Seal with the ephemeral key and nonce given (known-answer
// tests).
func seal(recipient *ecdh.PublicKey, eph *ecdh.PrivateKey, nonce []byte, c Context, plaintext []byte) (string, error) {
	if recipient == nil || recipient.Curve() != ecdh.P256() {
		return "", fmt.Errorf("seal: recipient key: want P-256")
	}
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	if len(plaintext) == 0 || len(plaintext) > MaxPlaintext {
		return "", fmt.Errorf("seal: plaintext of %d bytes, want 1..%d", len(plaintext), MaxPlaintext)
	}
	z, err := eph.ECDH(recipient)
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	defer clear(z)
	header := make([]byte, 0, headerLen)
	header = append(header, formatV1)
	header = binary.BigEndian.AppendUint64(header, c.Version)
	header = append(header, eph.PublicKey().Bytes()...)
	header = append(header, nonce...)
	aead, err := newAEAD(z, eph.PublicKey().Bytes(), recipient.Bytes())
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	box := aead.Seal(header, nonce, plaintext, c.aad(header))
	return Prefix + base64.RawURLEncoding.EncodeToString(box), nil
}

// newAEAD derives the AES-256-GCM key from Z: HKDF-SHA256 with the two
// public points as salt (so the key is bound to both keys, not only to Z)
// and the format's info string.
func newAEAD(z, ephemeral, recipient []byte) (cipher.AEAD, error) {
	salt := make([]byte, 0, 2*pointLen)
	salt = append(append(salt, ephemeral...), recipient...)
	key, err := hkdf.Key(sha256.New, z, salt, hkdfInfo, keyLen)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// Box is a parsed sealed value, not yet opened.
type Box struct {
	// Version is the document version the value says it was sealed for
	// (authenticated only by Open).
	Version uint64
	// Ephemeral is the sender's ephemeral public key: the point the
	// recipient multiplies by its private key (TPM2_ECDH_ZGen's inPoint).
	Ephemeral *ecdh.PublicKey

	header []byte
	ct     []byte // ciphertext || tag
}

// Parse decodes a sealed value without opening it.
func Parse(s string) (*Box, error) {
	if len(s) > MaxEncoded {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrFormat, len(s), MaxEncoded)
	}
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return nil, fmt.Errorf("%w: no %q prefix", ErrFormat, Prefix)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	// The decoder skips CR and LF anywhere: one box, one spelling.
	if base64.RawURLEncoding.EncodeToString(raw) != rest {
		return nil, fmt.Errorf("%w: not in canonical base64url (line breaks or other characters the decoder skips)", ErrFormat)
	}
	if len(raw) < headerLen+tagLen+1 || len(raw) > headerLen+MaxPlaintext+tagLen {
		return nil, fmt.Errorf("%w: box of %d bytes", ErrFormat, len(raw))
	}
	if raw[0] != formatV1 {
		return nil, fmt.Errorf("%w: format %d, want %d", ErrFormat, raw[0], formatV1)
	}
	v := binary.BigEndian.Uint64(raw[1:9])
	if v == 0 {
		return nil, fmt.Errorf("%w: version 0", ErrFormat)
	}
	// NewPublicKey checks the point is on the curve and not the identity.
	eph, err := ecdh.P256().NewPublicKey(raw[9 : 9+pointLen])
	if err != nil {
		return nil, fmt.Errorf("%w: ephemeral point: %v", ErrFormat, err)
	}
	return &Box{Version: v, Ephemeral: eph, header: raw[:headerLen], ct: raw[headerLen:]}, nil
}

// Open authenticates and decrypts the box with Z, the x-coordinate of the
// recipient's private key times b.Ephemeral (TPM2_ECDH_ZGen's outPoint.x,
// 32 bytes), for the recipient key, bound to c (whose Version must be the
// box's). It returns ErrOpen for any mismatch. The caller zeroes the
// plaintext when done.
func (b *Box) Open(recipient *ecdh.PublicKey, z []byte, c Context) ([]byte, error) {
	if recipient == nil || recipient.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("open: recipient key: want P-256")
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if len(z) != 32 {
		return nil, fmt.Errorf("open: shared secret of %d bytes, want 32", len(z))
	}
	if c.Version != b.Version {
		return nil, fmt.Errorf("%w: sealed for version %d, opened as version %d", ErrOpen, b.Version, c.Version)
	}
	aead, err := newAEAD(z, b.Ephemeral.Bytes(), recipient.Bytes())
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	nonce := b.header[headerLen-nonceLen:]
	pt, err := aead.Open(nil, nonce, b.ct, c.aad(b.header))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Open opens a sealed value with a private key held in memory (a
// software sealing key; the TPM's never is).
func Open(priv *ecdh.PrivateKey, s string, c Context) ([]byte, error) {
	b, err := Parse(s)
	if err != nil {
		return nil, err
	}
	z, err := priv.ECDH(b.Ephemeral)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer clear(z)
	return b.Open(priv.PublicKey(), z, c)
}
