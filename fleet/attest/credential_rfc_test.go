package attest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"testing"
)

// This file checks MakeCredential against the TPM 2.0 specification with
// an ActivateCredential written here in software from the spec text
// alone (TPM 2.0 Part 1 §11.4.10 KDFa and KDFe, §24 "Credential
// Protection", Part 3 §12.5), sharing no code with go-tpm. The vectors in
// testdata/makecredential_swtpm.json were made by swtpm's own
// TPM2_MakeCredential (the TCG reference implementation in libtpms) to
// EK-shaped keys whose private halves are in the file; see
// TestMakeCredentialVectorsRegenerate. So: the TPM's output opens with this
// inverse (the inverse is right), and MakeCredential's output opens with
// it too (MakeCredential is right). The tests against swtpm then have a
// real TPM activate MakeCredential's output.

// kdfa is KDFa (Part 1 §11.4.10.2), SP 800-108 counter mode with HMAC:
// K(i) = HMAC(key, [i]32 || label || 0x00 || contextU || contextV || [bits]32).
func kdfa(h func() hash.Hash, key []byte, label string, contextU, contextV []byte, bits int) []byte {
	var out []byte
	for i := uint32(1); len(out)*8 < bits; i++ {
		m := hmac.New(h, key)
		binary.Write(m, binary.BigEndian, i)
		m.Write([]byte(label))
		m.Write([]byte{0})
		m.Write(contextU)
		m.Write(contextV)
		binary.Write(m, binary.BigEndian, uint32(bits))
		out = m.Sum(out)
	}
	return out[:bits/8]
}

// kdfe is KDFe (Part 1 §11.4.10.3), SP 800-56A concatenation KDF:
// K(i) = H([i]32 || Z || label || 0x00 || partyUInfo || partyVInfo).
func kdfe(h func() hash.Hash, z []byte, label string, partyU, partyV []byte, bits int) []byte {
	var out []byte
	for i := uint32(1); len(out)*8 < bits; i++ {
		d := h()
		binary.Write(d, binary.BigEndian, i)
		d.Write(z)
		d.Write([]byte(label))
		d.Write([]byte{0})
		d.Write(partyU)
		d.Write(partyV)
		out = d.Sum(out)
	}
	return out[:bits/8]
}

// tpm2b splits a TPM2B off b.
func tpm2b(b []byte) (v, rest []byte, err error) {
	if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
		return nil, nil, errors.New("truncated TPM2B")
	}
	n := int(binary.BigEndian.Uint16(b))
	return b[2 : 2+n], b[2+n:], nil
}

// softActivate is TPM2_ActivateCredential with the EK's private key.
func softActivate(ekPriv any, name, blob, encSecret []byte) ([]byte, error) {
	var (
		h       func() hash.Hash
		aesBits int
		seed    []byte
	)
	switch k := ekPriv.(type) {
	case *rsa.PrivateKey:
		// Template L-1: SHA-256, AES-128. Part 1 Annex B ("RSA"), secret
		// sharing: OAEP with the nameAlg and label "IDENTITY" with its
		// terminating zero.
		h, aesBits = sha256.New, 128
		var err error
		seed, err = rsa.DecryptOAEP(sha256.New(), nil, k, encSecret, []byte("IDENTITY\x00"))
		if err != nil {
			return nil, fmt.Errorf("OAEP: %w", err)
		}
	case *ecdh.PrivateKey:
		// Templates L-2 (P-256: SHA-256, AES-128) and H-3 (P-384:
		// SHA-384, AES-256). Part 1 Annex C ("ECC"), secret sharing: the
		// encrypted secret is the ephemeral point, the seed
		// KDFe(Z, "IDENTITY", Q_e.x, Q_ek.x).
		size := 32
		h, aesBits = sha256.New, 128
		if k.Curve() == ecdh.P384() {
			size, h, aesBits = 48, sha512.New384, 256
		}
		x, rest, err := tpm2b(encSecret)
		if err != nil {
			return nil, err
		}
		y, rest, err := tpm2b(rest)
		if err != nil || len(rest) != 0 || len(x) != size || len(y) != size {
			return nil, fmt.Errorf("ephemeral point malformed (%v)", err)
		}
		eph, err := k.Curve().NewPublicKey(append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, err
		}
		z, err := k.ECDH(eph)
		if err != nil {
			return nil, err
		}
		ekX := k.PublicKey().Bytes()[1 : 1+size]
		seed = kdfe(h, z, "IDENTITY", x, ekX, h().Size()*8)
	default:
		return nil, fmt.Errorf("EK private key %T", ekPriv)
	}
	integrity, encIdentity, err := tpm2b(blob)
	if err != nil {
		return nil, err
	}
	// Part 1 §24, "HMAC": over encIdentity || Name with the INTEGRITY key.
	m := hmac.New(h, kdfa(h, seed, "INTEGRITY", nil, nil, h().Size()*8))
	m.Write(encIdentity)
	m.Write(name)
	if !hmac.Equal(m.Sum(nil), integrity) {
		return nil, errors.New("integrity HMAC mismatch")
	}
	// Part 1 §24, "Symmetric Encryption": AES-CFB, zero IV, key KDFa(seed, "STORAGE", Name).
	block, err := aes.NewCipher(kdfa(h, seed, "STORAGE", name, nil, aesBits))
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(encIdentity))
	cipher.NewCFBDecrypter(block, make([]byte, aes.BlockSize)).XORKeyStream(plain, encIdentity)
	secret, rest, err := tpm2b(plain)
	if err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("decrypted credential malformed (%v)", err)
	}
	return secret, nil
}

// credentialVector is one TPM2_MakeCredential swtpm ran.
type credentialVector struct {
	// Type is "rsa2048", "ecc-p256" or "ecc-p384".
	Type string `json:"type"`
	// EKPrivateKey is the PKCS#8 DER (hex) of the EK-shaped key swtpm
	// was given the public half of (TPM2_LoadExternal).
	EKPrivateKey    string `json:"ek_private_pkcs8"`
	IdentityName    string `json:"identity_name"`
	Credential      string `json:"credential"`
	CredentialBlob  string `json:"credential_blob"`
	EncryptedSecret string `json:"encrypted_secret"`
}

const vectorFile = "testdata/makecredential_swtpm.json"

func loadVectors(t *testing.T) []credentialVector {
	t.Helper()
	b, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var vs []credentialVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatalf("parse vectors: %v", err)
	}
	if len(vs) != 3 {
		t.Fatalf("%s holds %d vectors, want one per EK type (3)", vectorFile, len(vs))
	}
	return vs
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex: %v", err)
	}
	return b
}

// vectorKey parses a vector's EK private key into the form softActivate
// takes and returns its public half as a certificate would carry it.
func vectorKey(t *testing.T, v credentialVector) (priv, pub any) {
	t.Helper()
	k, err := x509.ParsePKCS8PrivateKey(unhex(t, v.EKPrivateKey))
	if err != nil {
		t.Fatalf("ParsePKCS8PrivateKey = %v", err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, &k.PublicKey
	case *ecdsa.PrivateKey:
		e, err := k.ECDH()
		if err != nil {
			t.Fatalf("ECDH = %v", err)
		}
		return e, &k.PublicKey
	}
	t.Fatalf("vector key %T", k)
	return nil, nil
}

// TestSWTPMVectorsOpenInSoftware: what the TPM made, the inverse opens.
func TestSWTPMVectorsOpenInSoftware(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Type, func(t *testing.T) {
			priv, _ := vectorKey(t, v)
			got, err := softActivate(priv, unhex(t, v.IdentityName), unhex(t, v.CredentialBlob), unhex(t, v.EncryptedSecret))
			if err != nil {
				t.Fatalf("softActivate(swtpm vector) = %v", err)
			}
			if want := unhex(t, v.Credential); !bytes.Equal(got, want) {
				t.Fatalf("softActivate(swtpm vector) = %x, want %x", got, want)
			}
			// The integrity HMAC covers the Name: another Name fails.
			other := unhex(t, v.IdentityName)
			other[len(other)-1] ^= 1
			if _, err := softActivate(priv, other, unhex(t, v.CredentialBlob), unhex(t, v.EncryptedSecret)); err == nil {
				t.Fatalf("softActivate(other name) = nil error, want an integrity failure")
			}
		})
	}
}

// TestMakeCredentialOpensInSoftware: what MakeCredential makes for the
// same keys and Names, the same inverse opens.
func TestMakeCredentialOpensInSoftware(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Type, func(t *testing.T) {
			priv, pub := vectorKey(t, v)
			if typ, err := EKType(pub); err != nil || typ != v.Type {
				t.Fatalf("EKType = %q, %v, want %q", typ, err, v.Type)
			}
			name := unhex(t, v.IdentityName)
			secret := make([]byte, MaxSecret)
			rand.Read(secret)
			blob, enc, err := MakeCredential(pub, name, secret)
			if err != nil {
				t.Fatalf("MakeCredential = %v", err)
			}
			got, err := softActivate(priv, name, blob, enc)
			if err != nil {
				t.Fatalf("softActivate(MakeCredential) = %v", err)
			}
			if !bytes.Equal(got, secret) {
				t.Fatalf("softActivate(MakeCredential) = %x, want %x", got, secret)
			}
			// Same shapes as the TPM's output.
			if len(blob) != len(unhex(t, v.CredentialBlob))-len(unhex(t, v.Credential))+MaxSecret {
				t.Fatalf("credential blob of %d bytes, the TPM's is %d for a %d-byte credential",
					len(blob), len(unhex(t, v.CredentialBlob)), len(unhex(t, v.Credential)))
			}
			if len(enc) != len(unhex(t, v.EncryptedSecret)) {
				t.Fatalf("encrypted secret of %d bytes, the TPM's is %d", len(enc), len(unhex(t, v.EncryptedSecret)))
			}
		})
	}
}

func TestMakeCredentialRefuses(t *testing.T) {
	vs := loadVectors(t)
	_, pub := vectorKey(t, vs[0])
	name := unhex(t, vs[0].IdentityName)
	sha384Name := append([]byte{0, 0x0c}, make([]byte, 48)...)
	p256 := newP256(t)
	tests := []struct {
		name   string
		ek     any
		idName []byte
		secret []byte
	}{
		{"short secret", pub, name, make([]byte, MinSecret-1)},
		{"long secret", pub, name, make([]byte, MaxSecret+1)},
		{"empty name", pub, nil, make([]byte, MinSecret)},
		{"SHA-384 name", pub, sha384Name, make([]byte, MinSecret)},
		{"name of wrong length", pub, name[:33], make([]byte, MinSecret)},
		{"RSA-3072 EK", &testRSA(t, 1).PublicKey, name, make([]byte, MinSecret)},
		{"private key as EK", p256, name, make([]byte, MinSecret)},
		{"nil EK", nil, name, make([]byte, MinSecret)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if blob, enc, err := MakeCredential(tt.ek, tt.idName, tt.secret); err == nil {
				t.Fatalf("MakeCredential(%s) = %x, %x, nil error, want an error", tt.name, blob, enc)
			}
		})
	}
}

// vectorPath is where TestMakeCredentialVectorsRegenerate writes.
func vectorPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(vectorFile)
	if err != nil {
		t.Fatalf("vector path: %v", err)
	}
	return p
}
