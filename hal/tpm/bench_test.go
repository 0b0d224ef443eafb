package tpm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/hardphone/hardphone/test"
)

// BenchmarkSeal and BenchmarkUnseal time sealing and unsealing a 32-byte
// KEK against swtpm, with no policy and with the PCR + NV counter policy
// credstore uses.
func BenchmarkSeal(b *testing.B) {
	tp, policies := benchTPM(b)
	kek := make([]byte, 32)
	for _, pc := range policies {
		b.Run(pc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(kek)))
			for b.Loop() {
				if _, err := tp.Seal(kek, pc.policy); err != nil {
					b.Fatalf("Seal = %v", err)
				}
			}
		})
	}
}

func BenchmarkUnseal(b *testing.B) {
	tp, policies := benchTPM(b)
	kek := make([]byte, 32)
	for _, pc := range policies {
		b.Run(pc.name, func(b *testing.B) {
			blob, err := tp.Seal(kek, pc.policy)
			if err != nil {
				b.Fatalf("Seal = %v", err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(kek)))
			for b.Loop() {
				if _, err := tp.Unseal(blob, pc.policy); err != nil {
					b.Fatalf("Unseal = %v", err)
				}
			}
		})
	}
}

type benchPolicy struct {
	name   string
	policy Policy
}

func benchTPM(b *testing.B) (*TPM, []benchPolicy) {
	b.Helper()
	sw := test.StartSWTPM(b)
	tp, err := Open(sw.Spec)
	if err != nil {
		b.Fatalf("Open = %v", err)
	}
	b.Cleanup(func() { tp.Close() })
	c, err := tp.DefineCounter(0x01800210)
	if err != nil {
		b.Fatalf("DefineCounter = %v", err)
	}
	if err := c.Increment(); err != nil {
		b.Fatalf("Increment = %v", err)
	}
	return tp, []benchPolicy{
		{"none", Policy{}},
		{"pcr+nv", Policy{PCRs: []int{7}, Counter: c, CounterValue: 1}},
	}
}

// BenchmarkSign compares TPM2_Sign on swtpm with crypto/ecdsa in-process.
func BenchmarkSign(b *testing.B) {
	sw := test.StartSWTPM(b)
	tp, err := Open(sw.Spec)
	if err != nil {
		b.Fatalf("Open = %v", err)
	}
	b.Cleanup(func() { tp.Close() })
	blob, err := tp.CreateSigningKey()
	if err != nil {
		b.Fatalf("CreateSigningKey = %v", err)
	}
	tpmSigner, err := tp.LoadSigner(blob)
	if err != nil {
		b.Fatalf("LoadSigner = %v", err)
	}
	soft, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatalf("GenerateKey = %v", err)
	}
	d := sha256.Sum256([]byte("handshake transcript"))
	for _, s := range []struct {
		name   string
		signer crypto.Signer
	}{{"tpm", tpmSigner}, {"software_ecdsa", soft}} {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.signer.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
					b.Fatalf("Sign = %v", err)
				}
			}
		})
	}
}
