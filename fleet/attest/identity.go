package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
)

// MaxPublicArea bounds the identity TPMT_PUBLIC a phone may send. The one
// accepted shape is 88 bytes; anything far larger is not worth parsing.
const MaxPublicArea = 512

// IdentityAttributes is the TPMA_OBJECT the phone's credential store gives
// its identity key, and the only one CheckIdentityKey accepts (TPM 2.0
// Part 2 §8.3 TPMA_OBJECT):
//
//	fixedTPM            bit 1   never leaves this TPM, not even duplicated
//	fixedParent         bit 4   never re-parented
//	sensitiveDataOrigin bit 5   the TPM generated the private key itself
//	userWithAuth        bit 6   signing authorized by the (empty) authValue
//	noDA                bit 10  no dictionary-attack lockout on it
//	sign                bit 18  an unrestricted signing key, for TLS
//
// Everything else must be clear: adminWithPolicy (the authPolicy is empty
// anyway), restricted and decrypt (it is not a storage or attestation
// key), encryptedDuplication and stClear.
const IdentityAttributes uint32 = 1<<1 | 1<<4 | 1<<5 | 1<<6 | 1<<10 | 1<<18

// TPM algorithm and curve identifiers of the accepted public area.
const (
	algECC        = 0x0023
	algNull       = 0x0010
	algECDSA      = 0x0018
	algECDH       = 0x0019
	curveNISTP256 = 0x0003
)

// IdentityKey is an identity key CheckIdentityKey accepted.
type IdentityKey struct {
	// Public is the ECDSA P-256 key, the one in the phone's TLS
	// certificate.
	Public *ecdsa.PublicKey
	// Name is the key's TPM Name, TPM_ALG_SHA256 || SHA-256(TPMT_PUBLIC)
	// (TPM 2.0 Part 1 §16 "Names"): what MakeCredential binds to.
	Name []byte
}

// CheckIdentityKey parses the identity key's TPMT_PUBLIC as the phone sent
// it and accepts exactly what the credential store makes, an ECC P-256
// ECDSA-SHA256 signing key with IdentityAttributes, a SHA-256 nameAlg and
// no authPolicy, whose point is tlsPublicKey's (the key of the phone's TLS
// client certificate or CSR). It returns the key and its Name.
//
// The attributes are only a claim until the credential is activated: the
// TPM binds them into the Name, and it activates a credential for that
// Name only while an object with exactly that public area is loaded next
// to the EK. fixedTPM, fixedParent and sensitiveDataOrigin are what make
// the activation mean "generated in and bound to this TPM": the TPM
// refuses to create or load an object claiming them that it did not make
// (a software key can only be loaded with fixedTPM and fixedParent clear,
// TPM 2.0 Part 3 §12.3 TPM2_LoadExternal), so a public area that does not
// claim them could be a loaded software key and is refused here.
// Errors wrap ErrIdentityKey.
//
// The accepted encoding (TPM 2.0 Part 2 §12.2.4 TPMT_PUBLIC, big-endian,
// canonical, nothing after it):
//
//	| type u16 = TPM_ALG_ECC | nameAlg u16 = TPM_ALG_SHA256 | objectAttributes u32 |
//	| authPolicy: size u16 = 0 |
//	| parameters TPMS_ECC_PARMS: symmetric u16 = TPM_ALG_NULL |
//	|   scheme u16 = TPM_ALG_ECDSA | scheme hashAlg u16 = TPM_ALG_SHA256 |
//	|   curveID u16 = TPM_ECC_NIST_P256 | kdf u16 = TPM_ALG_NULL |
//	| unique TPMS_ECC_POINT: x size u16 = 32 | x | y size u16 = 32 | y |
func CheckIdentityKey(tpmtPublic []byte, tlsPublicKey crypto.PublicKey) (*IdentityKey, error) {
	key, err := parseIdentityPublic(tpmtPublic)
	if err != nil {
		return nil, fmt.Errorf("check identity key: %w: %w", ErrIdentityKey, err)
	}
	tls, ok := tlsPublicKey.(*ecdsa.PublicKey)
	if !ok || !key.Public.Equal(tls) {
		return nil, fmt.Errorf("check identity key: %w: the TPM key is not the TLS key (%T)", ErrIdentityKey, tlsPublicKey)
	}
	return key, nil
}

// parseIdentityPublic parses and checks the accepted shape.
func parseIdentityPublic(b []byte) (*IdentityKey, error) {
	return parseECCPublic(b, IdentityAttributes, algECDSA)
}

// parseECCPublic parses a canonical ECC P-256 TPMT_PUBLIC with exactly the
// attributes attrsWant and the scheme schemeWant (with SHA-256).
func parseECCPublic(b []byte, attrsWant uint32, schemeWant uint16) (*IdentityKey, error) {
	if len(b) > MaxPublicArea {
		return nil, fmt.Errorf("%w: %d bytes, want at most %d", errMalformed, len(b), MaxPublicArea)
	}
	r := reader{b: b}
	typ, nameAlg, attrs := r.u16(), r.u16(), r.u32()
	policy := r.sized()
	sym := r.u16()
	scheme := r.u16()
	var schemeHash uint16
	if scheme != algNull {
		// TPMU_ASYM_SCHEME: every non-NULL ECC scheme carries a hashAlg.
		schemeHash = r.u16()
	}
	curve, kdf := r.u16(), r.u16()
	x, y := r.sized(), r.sized()
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the public area", errMalformed, len(r.b))
	}
	checks := []struct {
		ok   bool
		what string
		got  any
		want any
	}{
		{typ == algECC, "type", typ, algECC},
		{nameAlg == algSHA256, "nameAlg", nameAlg, algSHA256},
		{attrs == attrsWant, "objectAttributes", attrs, attrsWant},
		{len(policy) == 0, "authPolicy size", len(policy), 0},
		{sym == algNull, "symmetric", sym, algNull},
		{scheme == schemeWant && schemeHash == algSHA256, "scheme", [2]uint16{scheme, schemeHash}, [2]uint16{schemeWant, algSHA256}},
		{curve == curveNISTP256, "curveID", curve, curveNISTP256},
		{kdf == algNull, "kdf", kdf, algNull},
		{len(x) == 32 && len(y) == 32, "point coordinate sizes", [2]int{len(x), len(y)}, [2]int{32, 32}},
	}
	for _, c := range checks {
		if !c.ok {
			return nil, fmt.Errorf("%s 0x%x, want 0x%x", c.what, c.got, c.want)
		}
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), slices.Concat([]byte{4}, x, y))
	if err != nil {
		return nil, fmt.Errorf("point: %v", err)
	}
	sum := sha256.Sum256(b)
	return &IdentityKey{Public: pub, Name: slices.Concat([]byte{0, algSHA256}, sum[:])}, nil
}

// reader reads big-endian TPM fields, remembering the first short read.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("truncated: want %d more bytes, have %d", n, len(r.b))
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

// sized reads a TPM2B: a u16 size and that many bytes.
func (r *reader) sized() []byte {
	n := r.u16()
	if r.err != nil {
		return nil
	}
	return r.take(int(n))
}
