package credstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/attest"
	"github.com/hardphone/hardphone/fleet/sealed"
	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/test"
)

const sealDevice = "dev-0123456789abcdef0123456789abcdef"

// sealTo seals pw as the fleet does, to the store's sealing key.
func sealTo(t testing.TB, s *Store, version uint64, name, pw string) string {
	t.Helper()
	pub, err := s.SealingPublicKey()
	if err != nil {
		t.Fatalf("SealingPublicKey = %v", err)
	}
	v, err := sealed.Seal(pub, sealed.Context{DeviceID: sealDevice, Version: version, Name: name}, []byte(pw))
	if err != nil {
		t.Fatalf("Seal = %v", err)
	}
	return v
}

// TestOpenSealed runs the phone's side against both protectors: a value
// the fleet sealed opens straight into the store, again is a no-op, a
// newer one replaces it, and the plaintext is nowhere in the state file.
func TestOpenSealed(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := k.env(t)
			s := e.open(t, k.prot(e, t))
			if _, err := s.SealingPublicKey(); !errors.Is(err, ErrNoIdentity) {
				t.Fatalf("SealingPublicKey() before CreateSealingKey = %v, want ErrNoIdentity", err)
			}
			if err := s.CreateSealingKey(false); err != nil {
				t.Fatalf("CreateSealingKey = %v", err)
			}
			if err := s.CreateSealingKey(false); !errors.Is(err, ErrExists) {
				t.Fatalf("CreateSealingKey again = %v, want ErrExists", err)
			}
			const pw1, pw2 = "FIRST-pa55word-7a1c", "SECOND-pa55word-99bf"
			v1 := sealTo(t, s, 3, "sip/alice", pw1)
			if err := s.OpenSealed(v1, sealDevice, 3, "sip/alice"); err != nil {
				t.Fatalf("OpenSealed(v1) = %v", err)
			}
			wantGet(t, s, "sip/alice", pw1)
			// The same value in a later document changes nothing.
			if err := s.OpenSealed(v1, sealDevice, 5, "sip/alice"); err != nil {
				t.Fatalf("OpenSealed(v1 again) = %v", err)
			}
			list, _ := s.List()
			if len(list) != 1 || list[0].Version != 1 {
				t.Fatalf("List after a repeated OpenSealed = %+v, want one record at version 1", list)
			}
			v2 := sealTo(t, s, 6, "sip/alice", pw2)
			if err := s.OpenSealed(v2, sealDevice, 6, "sip/alice"); err != nil {
				t.Fatalf("OpenSealed(v2) = %v", err)
			}
			wantGet(t, s, "sip/alice", pw2)
			// Yesterday's document, replayed: refused, the value stays.
			if err := s.OpenSealed(v1, sealDevice, 7, "sip/alice"); !errors.Is(err, ErrSealed) {
				t.Fatalf("OpenSealed(older value) = %v, want ErrSealed", err)
			}
			wantGet(t, s, "sip/alice", pw2)
			// Deleted, the same value may fill it again.
			if err := s.Delete("sip/alice"); err != nil {
				t.Fatalf("Delete = %v", err)
			}
			if err := s.OpenSealed(v2, sealDevice, 6, "sip/alice"); err != nil {
				t.Fatalf("OpenSealed(v2) after Delete = %v", err)
			}
			wantGet(t, s, "sip/alice", pw2)
			e.closeDB(t)
			b, err := os.ReadFile(e.dbPath)
			if err != nil {
				t.Fatalf("read state file: %v", err)
			}
			for _, pw := range []string{pw1, pw2} {
				if bytes.Contains(b, []byte(pw)) {
					t.Fatalf("state file holds %q in clear", pw)
				}
			}
		})
	}
}

// TestOpenSealedRefusals: each refusal changes nothing.
func TestOpenSealedRefusals(t *testing.T) {
	e := newTPMEnv(t)
	s := e.open(t, e.tpmProtector(t))
	other := newTPMEnv(t)
	os2 := other.open(t, other.tpmProtector(t))
	for _, st := range []*Store{s, os2} {
		if err := st.CreateSealingKey(false); err != nil {
			t.Fatalf("CreateSealingKey = %v", err)
		}
	}
	mustPut(t, s, "sip/alice", "kept")
	good := sealTo(t, s, 4, "sip/alice", "new")
	tests := []struct {
		name    string
		value   string
		device  string
		version uint64
		cname   string
		want    error
	}{
		{"sealed to another phone's TPM", sealTo(t, os2, 4, "sip/alice", "new"), sealDevice, 4, "sip/alice", sealed.ErrOpen},
		{"another device's value", good, "dev-ffffffffffffffffffffffffffffffff", 4, "sip/alice", sealed.ErrOpen},
		{"moved to another name", good, sealDevice, 4, "sip/bob", sealed.ErrOpen},
		{"sealed for a later document", good, sealDevice, 3, "sip/alice", ErrSealed},
		{"malformed", "hps1.AAAA", sealDevice, 4, "sip/alice", sealed.ErrFormat},
		{"not sealed", "plain-password", sealDevice, 4, "sip/alice", ErrSealed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.OpenSealed(tt.value, tt.device, tt.version, tt.cname)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrSealed) {
				t.Fatalf("OpenSealed(%s) = %v, want ErrSealed and %v", tt.name, err, tt.want)
			}
			wantGet(t, s, "sip/alice", "kept")
			if _, err := s.Get("sip/bob"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(sip/bob) after a refusal = %v, want ErrNotFound", err)
			}
		})
	}
	// A copy of the state file on another TPM opens nothing.
	clone := e.clone(t)
	clone.sw, clone.tpm = other.sw, other.tpm
	if _, err := Open(clone.openDB(t), clone.tpmProtector(t)); !errors.Is(err, ErrWrongProtector) {
		t.Fatalf("Open(state file on another TPM) = %v, want ErrWrongProtector", err)
	}
}

// TestSealingAttestation: the sealing key's public area passes the
// fleet's check, and the TPM activates a credential made for its Name
// with the EK, which is what binds it to the enrolled TPM.
func TestSealingAttestation(t *testing.T) {
	ca := test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))
	e := newTPMEnv(t, test.SWTPMWithEK(ca))
	s := e.open(t, e.tpmProtector(t))
	if err := s.CreateSealingKey(false); err != nil {
		t.Fatalf("CreateSealingKey = %v", err)
	}
	a, err := s.SealingAttestation()
	if err != nil {
		t.Fatalf("SealingAttestation = %v", err)
	}
	k, err := attest.CheckSealingKey(a.Public)
	if err != nil {
		t.Fatalf("CheckSealingKey = %v", err)
	}
	if !bytes.Equal(k.Name, a.Name) {
		t.Fatalf("sealing key Name = %x, the fleet computes %x", a.Name, k.Name)
	}
	pub, _ := s.SealingPublicKey()
	if !k.Public.Equal(pub) {
		t.Fatalf("CheckSealingKey public = %x, SealingPublicKey = %x", k.Public.Bytes(), pub.Bytes())
	}
	if _, err := attest.CheckIdentityKey(a.Public, nil); err == nil {
		t.Fatalf("CheckIdentityKey(sealing key) = nil error; a sealing key must not pass as an identity key")
	}
	ekCert, err := attest.VerifyEK(e.sw.EKCertECCP256, ca.Pool(), time.Now())
	if err != nil {
		t.Fatalf("VerifyEK = %v", err)
	}
	secret := bytes.Repeat([]byte{0x5a}, attest.MaxSecret)
	blob, enc, err := attest.MakeCredential(ekCert.PublicKey, k.Name, secret)
	if err != nil {
		t.Fatalf("MakeCredential = %v", err)
	}
	got, err := s.ActivateSealingCredential(tpm.EKECCP256, blob, enc)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("ActivateSealingCredential = %x, %v; want the secret", []byte(got), err)
	}
	// A credential for the identity key's Name does not activate with the
	// sealing key.
	if err := s.CreateIdentity(false); err != nil {
		t.Fatalf("CreateIdentity = %v", err)
	}
	ia, err := s.IdentityAttestation(tpm.EKECCP256)
	if err != nil {
		t.Fatalf("IdentityAttestation = %v", err)
	}
	blob, enc, err = attest.MakeCredential(ekCert.PublicKey, ia.IdentityName, secret)
	if err != nil {
		t.Fatalf("MakeCredential = %v", err)
	}
	if _, err := s.ActivateSealingCredential(tpm.EKECCP256, blob, enc); !errors.Is(err, tpm.ErrActivation) {
		t.Fatalf("ActivateSealingCredential(identity key's credential) = %v, want tpm.ErrActivation", err)
	}
}
