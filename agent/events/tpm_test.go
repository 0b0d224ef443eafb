package events

import (
	"testing"

	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/test"
)

// TestJournalSignedByTPMIdentity signs the journal with the real device
// identity key: an ECDSA P-256 key inside a (software) TPM, reached as a
// crypto.Signer through the credential store, in the same state file.
func TestJournalSignedByTPMIdentity(t *testing.T) {
	sw := test.StartSWTPM(t)
	tp, err := tpm.Open(sw.Spec)
	if err != nil {
		t.Fatalf("tpm.Open(%s) = %v", sw.Spec, err)
	}
	p, err := credstore.NewTPMProtector(tp, credstore.OwnTPM())
	if err != nil {
		t.Fatalf("NewTPMProtector = %v", err)
	}
	t.Cleanup(func() { p.Close() })
	db := newDB(t)
	cs, err := credstore.Open(db, p)
	if err != nil {
		t.Fatalf("credstore.Open = %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	if err := cs.CreateIdentity(false); err != nil {
		t.Fatalf("CreateIdentity = %v", err)
	}
	signer, err := cs.Signer()
	if err != nil {
		t.Fatalf("Signer = %v", err)
	}
	clk := newClock()
	j, err := Open(db, signer, WithClock(clk.now), WithCheckpointEvery(8))
	if err != nil {
		t.Fatalf("Open(TPM signer) = %v", err)
	}
	appendN(t, j, clk, 40, 4)
	if err := j.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	rep, err := Verify(db, signer.Public())
	if err != nil {
		t.Fatalf("Verify = %v, problems %v", err, rep.Problems)
	}
	if rep.Signed < 1+40/8 || rep.Unsigned != 0 {
		t.Errorf("Verify() signed %d unsigned %d, want at least %d signed and none unsigned", rep.Signed, rep.Unsigned, 1+40/8)
	}
	// A software key of the same type cannot stand in for the TPM's.
	if _, err := Verify(db, newKey(t).Public()); err == nil {
		t.Errorf("Verify(another key) = nil, want unknown-key problems")
	}
}
