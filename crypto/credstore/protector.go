package credstore

import (
	"crypto"
	"crypto/ecdh"
	"errors"
	"fmt"

	"github.com/hardphone/hardphone/hal/tpm"
)

// Protection says what guards a store's KEK.
type Protection uint8

const (
	// ProtectionTPM: the KEK is sealed by the TPM and the identity key
	// lives in it.
	ProtectionTPM Protection = 1
	// ProtectionSoftware: the KEK is a 0600 file and the identity key is
	// encrypted under it. Anyone who can read the file and the state
	// database has every secret.
	ProtectionSoftware Protection = 2
)

// String returns "tpm" or "software".
func (p Protection) String() string {
	switch p {
	case ProtectionTPM:
		return "tpm"
	case ProtectionSoftware:
		return "software"
	}
	return fmt.Sprintf("protection(%d)", uint8(p))
}

// Weaker reports whether the protection is weaker than a TPM's, which
// `status` must say: true for the software protector.
func (p Protection) Weaker() bool { return p != ProtectionTPM }

// Protector guards a store's KEK and makes its identity key: a TPM, or a
// KEK file chosen explicitly. It is never picked by fallback.
type Protector struct {
	impl protector
	// closer closes what OpenProtector opened; nil when the caller owns
	// the TPM.
	closer func() error
}

// protector is what a store needs from its KEK guardian.
type protector interface {
	protection() Protection
	// seal protects kek, bound to pcrs (TPM only), and describes how in a
	// record; it never stores the KEK itself anywhere the record goes.
	seal(kek []byte, pcrs []int) (*kekRecord, error)
	// unseal returns the KEK of rec, or an error wrapping
	// ErrWrongProtector, ErrWiped, ErrPolicy or ErrCorrupt.
	unseal(rec *kekRecord) ([]byte, error)
	// destroy makes every KEK sealed so far unrecoverable; rec is nil when
	// no record survives.
	destroy(rec *kekRecord) error
	// pcrs is the PCR set the protector was told to bind to; ok is false
	// when none was configured, which keeps an existing store's set.
	pcrs() (pcrs []int, ok bool)
	newIdentityKey() (*identityKey, error)
	loadSigner(k *identityKey) (signer, error)
	// newSealingKey makes a key-agreement key (the fleet's sealing
	// recipient); sealingPublic and zgen use one.
	newSealingKey() (*identityKey, error)
	sealingPublic(k *identityKey) (*ecdh.PublicKey, error)
	// zgen returns Z, the x-coordinate of the key's private scalar times
	// peer (32 bytes); the caller zeroes it.
	zgen(k *identityKey, peer *ecdh.PublicKey) ([]byte, error)
}

// signer is a loaded identity key.
type signer interface {
	crypto.Signer
	Close() error
}

// Protection returns what guards the KEK.
func (p *Protector) Protection() Protection { return p.impl.protection() }

// Close releases the TPM when the protector owns it (OwnTPM); for a
// protector made from a caller's TPM, or the software one, it does
// nothing.
func (p *Protector) Close() error {
	if p.closer == nil {
		return nil
	}
	c := p.closer
	p.closer = nil
	if err := c(); err != nil {
		return fmt.Errorf("close protector: %w", err)
	}
	return nil
}

// errorRank orders unseal failures by how much they tell the user, so Open
// reports the most telling one when no KEK copy opens.
func errorRank(err error) int {
	switch {
	case errors.Is(err, ErrWrongProtector):
		return 4
	case errors.Is(err, ErrWiped):
		return 3
	case errors.Is(err, ErrPolicy):
		return 2
	case errors.Is(err, ErrCorrupt):
		return 1
	}
	return 0
}

// ErrNoTPM is returned for TPM-only operations on the software protector.
var ErrNoTPM = errors.New("no TPM: the software protector has no NV counters and no attestable identity")

// Counter opens the monotonic NV counter at index on the protector's TPM,
// defining it when absent (the updater's anti-rollback floor). It shares
// the protector's connection, so a swtpm socket is not opened twice.
func (p *Protector) Counter(index uint32) (*tpm.Counter, error) {
	tp, ok := p.impl.(*tpmProtector)
	if !ok {
		return nil, ErrNoTPM
	}
	c, err := tp.t.DefineCounter(index)
	if err != nil {
		return nil, fmt.Errorf("nv counter 0x%08x: %w", index, err)
	}
	return c, nil
}
