package attest

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"
)

// BenchmarkAttestation times one attestation round against swtpm for each
// EK type: the fleet's checks and MakeCredential (software) followed by
// the phone's ActivateCredential (EK certificate read from NV, EK found at
// its persistent handle, key loaded, two salted sessions). The reference,
// measured in the same run on the same swtpm, is one plain TPM2_Sign with
// the identity key, the TPM operation every TLS handshake of the phone
// costs. /make_credential is the fleet's share alone.
func BenchmarkAttestation(b *testing.B) {
	ca := newCA(b, "mfg")
	p := newPhone(b, ca)
	secret := make([]byte, MaxSecret)
	if _, err := rand.Read(secret); err != nil {
		b.Fatalf("rand = %v", err)
	}
	for _, k := range swtpmEKTypes {
		ekCert := mustEKCert(b, p, k)
		cert, err := VerifyEK(ekCert, ca.Pool(), time.Now())
		if err != nil {
			b.Fatalf("VerifyEK = %v", err)
		}
		b.Run("ours/"+k.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := VerifyEK(ekCert, ca.Pool(), time.Now()); err != nil {
					b.Fatalf("VerifyEK = %v", err)
				}
				id, err := CheckIdentityKey(p.pub, p.tlsKey)
				if err != nil {
					b.Fatalf("CheckIdentityKey = %v", err)
				}
				blob, enc, err := MakeCredential(cert.PublicKey, id.Name, secret)
				if err != nil {
					b.Fatalf("MakeCredential = %v", err)
				}
				if _, err := p.tpm.ActivateCredential(k, p.key, blob, enc); err != nil {
					b.Fatalf("ActivateCredential = %v", err)
				}
			}
		})
		b.Run("make_credential/"+k.String(), func(b *testing.B) {
			id, err := CheckIdentityKey(p.pub, p.tlsKey)
			if err != nil {
				b.Fatalf("CheckIdentityKey = %v", err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := MakeCredential(cert.PublicKey, id.Name, secret); err != nil {
					b.Fatalf("MakeCredential = %v", err)
				}
			}
		})
	}
	signer, err := p.tpm.LoadSigner(p.key)
	if err != nil {
		b.Fatalf("LoadSigner = %v", err)
	}
	d := sha256.Sum256([]byte("handshake transcript"))
	b.Run("reference/tpm_sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := signer.Sign(nil, d[:], crypto.SHA256); err != nil {
				b.Fatalf("Sign = %v", err)
			}
		}
	})
}
