package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// swtpmIdentityPublic is the TPMT_PUBLIC of an identity key swtpm made for
// hal/tpm's CreateSigningKey (captured from a run): the shape the parser
// must accept.
const swtpmIdentityPublic = "0023000b00040472000000100018000b00030010002053fb810e13d5ae0ce5a95964e5924cfcc0a9496a2a4c1fa408405198c2db95e3002061d2bd37522aa29135a764b57470f480e682269e319126875afef1418b97b569"

// identityTemplate is the public area the credential store creates, built
// here with go-tpm's encoder, independent of the parser under test.
func identityTemplate(pub *ecdsa.PublicKey) tpm2.TPMTPublic {
	point, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true,
			UserWithAuth: true, NoDA: true, SignEncrypt: true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: point[1:33]},
			Y: tpm2.TPM2BECCParameter{Buffer: point[33:]},
		}),
	}
}

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	return k
}

func TestCheckIdentityKeySWTPM(t *testing.T) {
	b, err := hex.DecodeString(swtpmIdentityPublic)
	if err != nil {
		t.Fatalf("hex = %v", err)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b)
	if err != nil {
		t.Fatalf("tpm2.Unmarshal = %v", err)
	}
	tlsKey, err := tpm2.Pub(*pub)
	if err != nil {
		t.Fatalf("tpm2.Pub = %v", err)
	}
	key, err := CheckIdentityKey(b, tlsKey)
	if err != nil {
		t.Fatalf("CheckIdentityKey(swtpm key) = %v", err)
	}
	want, err := tpm2.ObjectName(pub)
	if err != nil {
		t.Fatalf("tpm2.ObjectName = %v", err)
	}
	if !bytes.Equal(key.Name, want.Buffer) {
		t.Fatalf("CheckIdentityKey name = %x, want %x", key.Name, want.Buffer)
	}
}

func TestCheckIdentityKey(t *testing.T) {
	k := newP256(t)
	other := newP256(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	mod := func(f func(p *tpm2.TPMTPublic)) []byte {
		p := identityTemplate(&k.PublicKey)
		f(&p)
		return tpm2.Marshal(p)
	}
	good := mod(func(*tpm2.TPMTPublic) {})
	tests := []struct {
		name string
		pub  []byte
		tls  any
		ok   bool
	}{
		{"credstore key", good, &k.PublicKey, true},
		{"another TLS key", good, &other.PublicKey, false},
		{"TLS key of another type", good, p384.Public(), false},
		{"nil TLS key", good, nil, false},
		{"fixedTPM clear", mod(func(p *tpm2.TPMTPublic) { p.ObjectAttributes.FixedTPM = false }), &k.PublicKey, false},
		{"fixedParent clear", mod(func(p *tpm2.TPMTPublic) { p.ObjectAttributes.FixedParent = false }), &k.PublicKey, false},
		{"sensitiveDataOrigin clear", mod(func(p *tpm2.TPMTPublic) { p.ObjectAttributes.SensitiveDataOrigin = false }), &k.PublicKey, false},
		{"sign clear", mod(func(p *tpm2.TPMTPublic) { p.ObjectAttributes.SignEncrypt = false }), &k.PublicKey, false},
		{"adminWithPolicy set", mod(func(p *tpm2.TPMTPublic) { p.ObjectAttributes.AdminWithPolicy = true }), &k.PublicKey, false},
		{"restricted set", mod(func(p *tpm2.TPMTPublic) { p.ObjectAttributes.Restricted = true }), &k.PublicKey, false},
		{"decrypt set", mod(func(p *tpm2.TPMTPublic) { p.ObjectAttributes.Decrypt = true }), &k.PublicKey, false},
		{"encryptedDuplication set", mod(func(p *tpm2.TPMTPublic) { p.ObjectAttributes.EncryptedDuplication = true }), &k.PublicKey, false},
		{"authPolicy set", mod(func(p *tpm2.TPMTPublic) { p.AuthPolicy = tpm2.TPM2BDigest{Buffer: make([]byte, 32)} }), &k.PublicKey, false},
		{"nameAlg SHA-384", mod(func(p *tpm2.TPMTPublic) { p.NameAlg = tpm2.TPMAlgSHA384 }), &k.PublicKey, false},
		{"scheme NULL", mod(func(p *tpm2.TPMTPublic) {
			parms, _ := p.Parameters.ECCDetail()
			parms.Scheme = tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull}
		}), &k.PublicKey, false},
		{"curve P-384", mod(func(p *tpm2.TPMTPublic) {
			parms, _ := p.Parameters.ECCDetail()
			parms.CurveID = tpm2.TPMECCNistP384
		}), &k.PublicKey, false},
		{"x of 31 bytes", mod(func(p *tpm2.TPMTPublic) {
			pt, _ := p.Unique.ECC()
			pt.X.Buffer = pt.X.Buffer[1:]
		}), &k.PublicKey, false},
		{"point off the curve", mod(func(p *tpm2.TPMTPublic) {
			pt, _ := p.Unique.ECC()
			pt.Y.Buffer = bytes.Clone(pt.Y.Buffer)
			pt.Y.Buffer[31] ^= 1
		}), &k.PublicKey, false},
		{"trailing byte", append(bytes.Clone(good), 0), &k.PublicKey, false},
		{"truncated", good[:len(good)-1], &k.PublicKey, false},
		{"empty", nil, &k.PublicKey, false},
		{"oversized", append(bytes.Clone(good), make([]byte, MaxPublicArea)...), &k.PublicKey, false},
		{"RSA key", tpm2.Marshal(tpm2.RSASRKTemplate), &k.PublicKey, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckIdentityKey(tt.pub, tt.tls)
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckIdentityKey(%s) = %v, want success", tt.name, err)
				}
				p, err := tpm2.Unmarshal[tpm2.TPMTPublic](tt.pub)
				if err != nil {
					t.Fatalf("tpm2.Unmarshal = %v", err)
				}
				want, err := tpm2.ObjectName(p)
				if err != nil {
					t.Fatalf("tpm2.ObjectName = %v", err)
				}
				if !bytes.Equal(got.Name, want.Buffer) || !got.Public.Equal(tt.tls) {
					t.Fatalf("CheckIdentityKey(%s) = name %x, want %x", tt.name, got.Name, want.Buffer)
				}
				return
			}
			if !errors.Is(err, ErrIdentityKey) {
				t.Fatalf("CheckIdentityKey(%s) = %v, %v, want ErrIdentityKey", tt.name, got, err)
			}
		})
	}
}
