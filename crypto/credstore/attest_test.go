package credstore

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/attest"
	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/test"
)

// fleetChallenge is the fleet's side of the round (fleet/attest): verify
// what the phone sent and make a credential for it.
func fleetChallenge(t testing.TB, ca *test.ManufacturerCA, a *Attestation, tlsKey any) (blob, enc, secret []byte) {
	t.Helper()
	cert, err := attest.VerifyEK(a.EKCertificate, ca.Pool(), time.Now())
	if err != nil {
		t.Fatalf("VerifyEK = %v", err)
	}
	id, err := attest.CheckIdentityKey(a.IdentityPublic, tlsKey)
	if err != nil {
		t.Fatalf("CheckIdentityKey = %v", err)
	}
	if !bytes.Equal(id.Name, a.IdentityName) {
		t.Fatalf("IdentityName = %x, the fleet computes %x", a.IdentityName, id.Name)
	}
	secret = make([]byte, attest.MaxSecret)
	if _, err := rand.Read(secret); err != nil {
		t.Fatalf("rand = %v", err)
	}
	blob, enc, err = attest.MakeCredential(cert.PublicKey, id.Name, secret)
	if err != nil {
		t.Fatalf("MakeCredential = %v", err)
	}
	return blob, enc, secret
}

func TestIdentityAttestation(t *testing.T) {
	ca := test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))
	e := newTPMEnv(t, test.SWTPMWithEK(ca))
	log, sink := newLog()
	s := e.open(t, e.tpmProtector(t), WithLogger(log))
	if _, err := s.IdentityAttestation(); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("IdentityAttestation() before CreateIdentity = %v, want ErrNoIdentity", err)
	}
	if err := s.CreateIdentity(false); err != nil {
		t.Fatalf("CreateIdentity = %v", err)
	}
	sg, err := s.Signer()
	if err != nil {
		t.Fatalf("Signer = %v", err)
	}
	tests := []struct {
		prefer []tpm.EKType
		want   tpm.EKType
	}{
		{nil, tpm.EKECCP256},
		{[]tpm.EKType{tpm.EKRSA2048}, tpm.EKRSA2048},
		{[]tpm.EKType{tpm.EKECCP384, tpm.EKRSA2048}, tpm.EKECCP384},
	}
	var secrets [][]byte
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.prefer), func(t *testing.T) {
			a, err := s.IdentityAttestation(tt.prefer...)
			if err != nil {
				t.Fatalf("IdentityAttestation(%v) = %v", tt.prefer, err)
			}
			if a.EKType != tt.want {
				t.Fatalf("IdentityAttestation(%v) EK = %v, want %v", tt.prefer, a.EKType, tt.want)
			}
			blob, enc, secret := fleetChallenge(t, ca, a, sg.Public())
			got, err := s.ActivateCredential(a.EKType, blob, enc)
			if err != nil {
				t.Fatalf("ActivateCredential = %v", err)
			}
			if !bytes.Equal(got, secret) {
				t.Fatalf("ActivateCredential = %x, want %x", []byte(got), secret)
			}
			if fmt.Sprintf("%x %v", got, got) != redacted+" "+redacted {
				t.Fatalf("the activated secret prints as %x", got)
			}
			secrets = append(secrets, secret)
		})
	}
	if _, err := s.IdentityAttestation(tpm.EKType(9)); err == nil {
		t.Fatalf("IdentityAttestation(unknown EK type) = nil error, want an error")
	}

	// A new identity key has a new Name: a credential made for the old
	// one no longer opens.
	a, err := s.IdentityAttestation()
	if err != nil {
		t.Fatalf("IdentityAttestation = %v", err)
	}
	blob, enc, _ := fleetChallenge(t, ca, a, sg.Public())
	if err := s.CreateIdentity(true); err != nil {
		t.Fatalf("CreateIdentity(replace) = %v", err)
	}
	if got, err := s.ActivateCredential(a.EKType, blob, enc); !errors.Is(err, tpm.ErrActivation) {
		t.Fatalf("ActivateCredential(credential for the replaced key) = %x, %v, want tpm.ErrActivation", []byte(got), err)
	}
	logs := sink.String()
	for _, secret := range secrets {
		if strings.Contains(strings.ToLower(logs), hex.EncodeToString(secret)) {
			t.Fatalf("log holds an activated secret:\n%s", logs)
		}
	}
	if !strings.Contains(logs, "identity credential activated") || !strings.Contains(logs, "identity credential refused") {
		t.Fatalf("log lacks the activation events:\n%s", logs)
	}
}

func TestIdentityAttestationRefused(t *testing.T) {
	t.Run("software protector", func(t *testing.T) {
		e := newEnv(t)
		s := e.open(t, e.softProtector(t))
		if err := s.CreateIdentity(false); err != nil {
			t.Fatalf("CreateIdentity = %v", err)
		}
		if _, err := s.IdentityAttestation(); !errors.Is(err, ErrNoTPM) {
			t.Fatalf("IdentityAttestation(software) = %v, want ErrNoTPM", err)
		}
		if _, err := s.ActivateCredential(tpm.EKRSA2048, []byte{1}, []byte{1}); !errors.Is(err, ErrNoTPM) {
			t.Fatalf("ActivateCredential(software) = %v, want ErrNoTPM", err)
		}
	})
	t.Run("TPM without EK certificates", func(t *testing.T) {
		e := newTPMEnv(t)
		s := e.open(t, e.tpmProtector(t))
		if err := s.CreateIdentity(false); err != nil {
			t.Fatalf("CreateIdentity = %v", err)
		}
		if _, err := s.IdentityAttestation(); !errors.Is(err, tpm.ErrNoEKCert) {
			t.Fatalf("IdentityAttestation(no EK certificates) = %v, want tpm.ErrNoEKCert", err)
		}
	})
}
