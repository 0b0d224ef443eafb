package tpm

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/hardphone/hardphone/test"
)

// TestECDHZGen: the TPM's Z equals the one a sender computes in software
// with the key's public half, for several senders; the key is
// non-exportable and usable only for key agreement.
func TestECDHZGen(t *testing.T) {
	_, tp := startTPM(t)
	blob, err := tp.CreateECDHKey()
	if err != nil {
		t.Fatalf("CreateECDHKey = %v", err)
	}
	info, err := ECDHKey(blob)
	if err != nil || !info.NonExportable {
		t.Fatalf("ECDHKey = %+v, %v; want a non-exportable key", info, err)
	}
	if _, err := SigningKeyInfo(blob); err == nil {
		t.Fatalf("SigningKeyInfo(ECDH key) = nil error; a key-agreement key must not pass as a signing key")
	}
	for i := 0; i < 3; i++ {
		eph, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatalf("GenerateKey: %v", err)
		}
		want, err := eph.ECDH(info.Public)
		if err != nil {
			t.Fatalf("ECDH: %v", err)
		}
		got, err := tp.ECDHZGen(blob, eph.PublicKey())
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("ECDHZGen = %x, %v; want %x", got, err, want)
		}
	}
	// A signing key blob is not a key-agreement key.
	sk, err := tp.CreateSigningKey()
	if err != nil {
		t.Fatalf("CreateSigningKey = %v", err)
	}
	eph, _ := ecdh.P256().GenerateKey(rand.Reader)
	if _, err := tp.ECDHZGen(sk, eph.PublicKey()); !errors.Is(err, errNotECDHKey) {
		t.Fatalf("ECDHZGen(signing key) = %v, want errNotECDHKey", err)
	}
}

// TestECDHOtherTPM: another TPM refuses the blob, so a secret sealed to
// one phone's key cannot be opened with a copy of its state file on
// another.
func TestECDHOtherTPM(t *testing.T) {
	_, a := startTPM(t)
	_, b := startTPM(t)
	blob, err := a.CreateECDHKey()
	if err != nil {
		t.Fatalf("CreateECDHKey = %v", err)
	}
	eph, _ := ecdh.P256().GenerateKey(rand.Reader)
	if z, err := b.ECDHZGen(blob, eph.PublicKey()); !errors.Is(err, ErrBadBlob) {
		t.Fatalf("ECDHZGen on another TPM = %x, %v; want ErrBadBlob", z, err)
	}
}

// TestZNeverOnTheBus: the shared secret crosses the transport encrypted.
func TestZNeverOnTheBus(t *testing.T) {
	sw := test.StartSWTPM(t)
	inner, err := Open(sw.Spec)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	bus := &tap{inner: inner.tr}
	tp := &TPM{spec: sw.Spec, tr: bus, loaded: map[*Signer]struct{}{}}
	t.Cleanup(func() { tp.Close() })
	blob, err := tp.CreateECDHKey()
	if err != nil {
		t.Fatalf("CreateECDHKey = %v", err)
	}
	info, _ := ECDHKey(blob)
	eph, _ := ecdh.P256().GenerateKey(rand.Reader)
	z, err := tp.ECDHZGen(blob, eph.PublicKey())
	if err != nil {
		t.Fatalf("ECDHZGen = %v", err)
	}
	want, _ := eph.ECDH(info.Public)
	if !bytes.Equal(z, want) {
		t.Fatalf("ECDHZGen = %x, want %x", z, want)
	}
	bus.mu.Lock()
	defer bus.mu.Unlock()
	for i, msg := range bus.traffic {
		if bytes.Contains(msg, z[:16]) {
			t.Errorf("message %d on the bus holds Z in clear", i)
		}
	}
}
