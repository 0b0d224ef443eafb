package attest

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// identityPublicSize is the length of the accepted shape: four u16 and a
// u32 of header, an empty authPolicy, five u16 of parameters and two
// 32-byte coordinates with their sizes.
const identityPublicSize = 2 + 2 + 4 + 2 + 2 + 2 + 2 + 2 + 2 + 2 + 32 + 2 + 32

// goTPMParse is the oracle: go-tpm's reflective TPMT_PUBLIC decoder, with
// a panic in it turned into "no opinion" (it is not the code under test).
func goTPMParse(b []byte) (pub *tpm2.TPMTPublic, ok bool) {
	defer func() {
		if recover() != nil {
			pub, ok = nil, false
		}
	}()
	p, err := tpm2.Unmarshal[tpm2.TPMTPublic](b)
	if err != nil || !bytes.Equal(tpm2.Marshal(p), b) {
		return nil, false
	}
	return p, true
}

// acceptedShape says, from go-tpm's decoding, whether p is the one shape
// CheckIdentityKey accepts.
func acceptedShape(p *tpm2.TPMTPublic) bool {
	if p.Type != tpm2.TPMAlgECC || p.NameAlg != tpm2.TPMAlgSHA256 || len(p.AuthPolicy.Buffer) != 0 ||
		binary32(tpm2.Marshal(p.ObjectAttributes)) != IdentityAttributes {
		return false
	}
	parms, err := p.Parameters.ECCDetail()
	if err != nil || parms.Symmetric.Algorithm != tpm2.TPMAlgNull || parms.CurveID != tpm2.TPMECCNistP256 ||
		parms.KDF.Scheme != tpm2.TPMAlgNull || parms.Scheme.Scheme != tpm2.TPMAlgECDSA {
		return false
	}
	ecdsaScheme, err := parms.Scheme.Details.ECDSA()
	if err != nil || ecdsaScheme.HashAlg != tpm2.TPMAlgSHA256 {
		return false
	}
	pt, err := p.Unique.ECC()
	if err != nil || len(pt.X.Buffer) != 32 || len(pt.Y.Buffer) != 32 {
		return false
	}
	// tpm2.Pub does not check that the point is on the curve; crypto/ecdh
	// does.
	_, err = ecdh.P256().NewPublicKey(append(append([]byte{4}, pt.X.Buffer...), pt.Y.Buffer...))
	return err == nil
}

func binary32(b []byte) uint32 {
	if len(b) != 4 {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// FuzzCheckIdentityKey feeds the identity public-area parser arbitrary
// bytes. Properties: no panic; what it accepts, go-tpm decodes to the same
// key and re-encodes byte for byte, with the same Name; and whatever go-tpm
// decodes canonically into the accepted shape, it accepts.
//
//fuzz:budget 200000
func FuzzCheckIdentityKey(f *testing.F) {
	seed, err := hex.DecodeString(swtpmIdentityPublic)
	if err != nil {
		f.Fatalf("hex = %v", err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-1])
	f.Add(append(bytes.Clone(seed), 0))
	f.Add(tpm2.Marshal(tpm2.ECCSRKTemplate))
	f.Add(tpm2.Marshal(tpm2.RSAEKTemplate))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		key, err := parseIdentityPublic(b)
		if err != nil {
			// The accepted shape encodes canonically in exactly
			// identityPublicSize bytes, so only those can be wrongly
			// refused; the (slow, reflective) oracle runs on them only.
			if len(b) == identityPublicSize {
				if oracle, ok := goTPMParse(b); ok && acceptedShape(oracle) {
					t.Fatalf("parseIdentityPublic(%x) = %v, but go-tpm decodes the accepted shape", b, err)
				}
			}
			return
		}
		oracle, ok := goTPMParse(b)
		if !ok {
			t.Fatalf("parseIdentityPublic(%x) accepted what go-tpm does not decode canonically", b)
		}
		name, err := tpm2.ObjectName(oracle)
		if err != nil || !bytes.Equal(name.Buffer, key.Name) {
			t.Fatalf("parseIdentityPublic(%x) name = %x, go-tpm %x (%v)", b, key.Name, name.Buffer, err)
		}
		pub, err := tpm2.Pub(*oracle)
		if err != nil {
			t.Fatalf("tpm2.Pub = %v", err)
		}
		if ep, ok := pub.(*ecdsa.PublicKey); !ok || !ep.Equal(key.Public) {
			t.Fatalf("parseIdentityPublic(%x) key differs from go-tpm's", b)
		}
		if _, err := CheckIdentityKey(b, key.Public); err != nil {
			t.Fatalf("CheckIdentityKey(accepted area, its own key) = %v", err)
		}
	})
}

// FuzzTPMSAN feeds the EK certificate's subject alternative name parser
// arbitrary DER. Properties: no panic; an accepted name has all three TPM
// attributes, bounded and printable; a refusal wraps ErrNotEK.
//
//fuzz:budget 150000
func FuzzTPMSAN(f *testing.F) {
	f.Add(tpmSAN(f, true, tpmAttrs()...).Value)
	a := tpmAttrs()
	f.Add(tpmSAN(f, true, a[0], a[1]).Value)
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x03, 0x82, 0x01, 0x61})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := parseTPMSAN(b)
		if err != nil {
			if !errors.Is(err, ErrNotEK) {
				t.Fatalf("parseTPMSAN(%x) = %v, want ErrNotEK", b, err)
			}
			return
		}
		for _, s := range []string{info.Manufacturer, info.Model, info.Version} {
			if s == "" || len(s) > maxTPMAttr {
				t.Fatalf("parseTPMSAN(%x) = %+v: empty or oversized attribute", b, info)
			}
		}
	})
}
