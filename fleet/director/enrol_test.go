package director_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/test"
)

// TestEnrolSealingRefusals: the sealing key is bound to the enrolled TPM
// or the enrolment fails, and nothing is created.
func TestEnrolSealingRefusals(t *testing.T) {
	w := newWorld(t, "bbolt")
	sw := test.StartSWTPM(t, test.SWTPMWithEK(w.mfg))
	ek := sha256.Sum256(sw.EKCertECCP256)
	if _, err := w.admin.Import(ctx, []api.AllowEntry{{EKSHA256: hex.EncodeToString(ek[:]), Serial: "HP1-000009", Model: "hp-desk-1", Group: group}}); err != nil {
		t.Fatalf("Import: %v", err)
	}
	tp, err := tpm.Open(sw.Spec)
	if err != nil {
		t.Fatalf("tpm.Open: %v", err)
	}
	t.Cleanup(func() { tp.Close() })
	db, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	prot, _ := credstore.NewTPMProtector(tp)
	cs, err := credstore.Open(db, prot)
	if err != nil {
		t.Fatalf("credstore.Open: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	if err := cs.CreateIdentity(false); err != nil {
		t.Fatalf("CreateIdentity: %v", err)
	}
	if err := cs.CreateSealingKey(false); err != nil {
		t.Fatalf("CreateSealingKey: %v", err)
	}
	ec, err := client.New(client.Config{URL: w.fleet.URL, ServerName: serverName, Roots: w.roots})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	att, err := attester{cs}.Attest(ctx)
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	sealPub, _ := attester{cs}.SealingPublic(ctx)
	start := func(sealing []byte) *api.EnrolStartResponse {
		t.Helper()
		r, err := ec.EnrolStart(ctx, api.EnrolStartRequest{EKType: att.EKType, EKCert: att.EKCert, IdentityPublic: att.IdentityPublic, CSR: att.CSR,
			SealingPublic: sealing})
		if err != nil {
			t.Fatalf("EnrolStart: %v", err)
		}
		return r
	}
	activate := func(r *api.EnrolStartResponse) api.Secret {
		t.Helper()
		s, err := cs.ActivateCredential(tpm.EKECCP256, r.CredentialBlob, r.EncryptedSecret)
		if err != nil {
			t.Fatalf("ActivateCredential: %v", err)
		}
		return api.Secret(s)
	}

	// The identity key's public area offered as the sealing key.
	_, err = ec.EnrolStart(ctx, api.EnrolStartRequest{EKType: att.EKType, EKCert: att.EKCert, IdentityPublic: att.IdentityPublic, CSR: att.CSR,
		SealingPublic: att.IdentityPublic})
	wantCode(t, "EnrolStart(identity key as sealing key)", err, api.CodeSealingKey)

	// A sealing secret the TPM did not open.
	r := start(sealPub)
	if r.SealingCredentialBlob == nil {
		t.Fatalf("EnrolStart with a sealing key answered no second credential")
	}
	_, err = ec.EnrolFinish(ctx, api.EnrolFinishRequest{ChallengeID: r.ChallengeID, Secret: activate(r), SealingSecret: bytes.Repeat([]byte{1}, 32)})
	wantCode(t, "EnrolFinish(wrong sealing secret)", err, api.CodeSealingKey)

	// The second credential is bound to the sealing key's Name: the
	// identity key cannot open it.
	r = start(sealPub)
	if _, err := cs.ActivateCredential(tpm.EKECCP256, r.SealingCredentialBlob, r.SealingEncryptedSecret); err == nil {
		t.Fatalf("the identity key activated the sealing key's credential")
	}
	// No sealing secret for a round that has a sealing key.
	_, err = ec.EnrolFinish(ctx, api.EnrolFinishRequest{ChallengeID: r.ChallengeID, Secret: activate(r)})
	wantCode(t, "EnrolFinish(no sealing secret)", err, api.CodeSealingKey)

	// A sealing secret for a round without a sealing key.
	r = start(nil)
	_, err = ec.EnrolFinish(ctx, api.EnrolFinishRequest{ChallengeID: r.ChallengeID, Secret: activate(r), SealingSecret: bytes.Repeat([]byte{1}, 32)})
	wantCode(t, "EnrolFinish(sealing secret without a sealing key)", err, api.CodeBadRequest)

	inv, err := w.admin.Inventory(ctx, "", 0)
	if err != nil || len(inv.Devices) != 0 {
		t.Fatalf("inventory after refused enrolments = %+v, %v; want no device", inv, err)
	}
	// Done right, the device holds the sealing key the TPM proved.
	sg, _ := cs.Signer()
	resp, err := ec.Enrol(ctx, attester{cs}, sg.Public(), w.deviceCA)
	if err != nil {
		t.Fatalf("Enrol: %v", err)
	}
	inv, _ = w.admin.Inventory(ctx, "", 0)
	if len(inv.Devices) != 1 || inv.Devices[0].ID != resp.DeviceID || !inv.Devices[0].SealingKey {
		t.Fatalf("inventory = %+v, want the device with its sealing key", inv.Devices)
	}
}
