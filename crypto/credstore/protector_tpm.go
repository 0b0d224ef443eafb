package credstore

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"fmt"
	"slices"

	"github.com/hardphone/hardphone/hal/tpm"
)

// DefaultGenerationCounter is the NV index of the counter the KEK is sealed
// to, in the owner range of the TCG handle registry (0x01800000-0x01bfffff).
// Wipe increments it. It is never the updater's anti-rollback counter.
const DefaultGenerationCounter uint32 = 0x01800110

type tpmProtector struct {
	own bool // Close closes t (OwnTPM)
	t   *tpm.TPM
	// pcrSet is what WithPCRs asked for; pcrSetGiven tells "bind to no PCRs"
	// (WithPCRs()) from "not configured" (keep the store's set).
	pcrSet      []int
	pcrSetGiven bool
	genCounter  uint32
}

// TPMOption configures a TPM protector.
type TPMOption func(*tpmProtector) error

// WithPCRs binds the KEK to the current values of pcrs (SHA-256 bank):
// when any of them changes the TPM refuses to unseal, and the store refuses
// every Get, Put and Identity from then on (it unseals per operation, not
// once). An existing store sealed to another set is resealed to this one at
// Open, once its KEK has been unsealed under the old set; WithPCRs() with no
// PCRs removes the binding. Without WithPCRs a new store binds to no PCR
// and an existing one keeps its set.
func WithPCRs(pcrs ...int) TPMOption {
	return func(p *tpmProtector) error {
		n, err := tpm.NormalizePCRs(pcrs)
		if err != nil {
			return err
		}
		p.pcrSet, p.pcrSetGiven = n, true
		return nil
	}
}

// WithGenerationCounter sets the NV index of the KEK generation counter;
// the default is DefaultGenerationCounter.
func WithGenerationCounter(index uint32) TPMOption {
	return func(p *tpmProtector) error {
		if index>>24 != 0x01 {
			return fmt.Errorf("generation counter 0x%08x is not an NV index", index)
		}
		p.genCounter = index
		return nil
	}
}

// OwnTPM hands t to the protector: its Close closes t.
func OwnTPM() TPMOption {
	return func(p *tpmProtector) error {
		p.own = true
		return nil
	}
}

// NewTPMProtector guards the KEK with t. The caller keeps t and closes it
// after the store, unless OwnTPM hands it over.
func NewTPMProtector(t *tpm.TPM, opts ...TPMOption) (*Protector, error) {
	p := &tpmProtector{t: t, genCounter: DefaultGenerationCounter}
	for _, opt := range opts {
		if err := opt(p); err != nil {
			return nil, fmt.Errorf("TPM protector: %w", err)
		}
	}
	pr := &Protector{impl: p}
	if p.own {
		pr.closer = t.Close
	}
	return pr, nil
}

func (p *tpmProtector) protection() Protection { return ProtectionTPM }
func (p *tpmProtector) pcrs() ([]int, bool)    { return p.pcrSet, p.pcrSetGiven }

// generation returns the counter, defining and first incrementing it on a
// TPM that never had one: PolicyNV cannot read an unwritten index.
func (p *tpmProtector) generation() (*tpm.Counter, uint64, error) {
	c, err := p.t.DefineCounter(p.genCounter)
	if err != nil {
		return nil, 0, err
	}
	v, err := c.Read()
	if err != nil {
		return nil, 0, err
	}
	if v == 0 {
		if err := c.Increment(); err != nil {
			return nil, 0, err
		}
		if v, err = c.Read(); err != nil {
			return nil, 0, err
		}
	}
	return c, v, nil
}

// seal binds kek to the generation counter and to pcrs (nil: none).
func (p *tpmProtector) seal(kek []byte, pcrs []int) (*kekRecord, error) {
	name, err := p.t.SRKName()
	if err != nil {
		return nil, fmt.Errorf("seal KEK: %w", err)
	}
	c, gen, err := p.generation()
	if err != nil {
		return nil, fmt.Errorf("seal KEK: %w", err)
	}
	rec := &kekRecord{
		protection:   ProtectionTPM,
		generation:   gen,
		counterIndex: c.Index(),
		pcrs:         slices.Clone(pcrs),
		srkName:      name,
	}
	policy := tpm.Policy{Counter: c, CounterValue: gen}
	if len(rec.pcrs) > 0 {
		if rec.pcrValues, err = p.t.PCRValues(rec.pcrs); err != nil {
			return nil, fmt.Errorf("seal KEK: %w", err)
		}
		policy.PCRs, policy.PCRDigest = rec.pcrs, tpm.PCRDigest(rec.pcrValues)
	}
	if rec.sealed, err = p.t.Seal(kek, policy); err != nil {
		return nil, fmt.Errorf("seal KEK: %w", err)
	}
	return rec, nil
}

func (p *tpmProtector) unseal(rec *kekRecord) ([]byte, error) {
	if rec.protection != ProtectionTPM {
		return nil, fmt.Errorf("%w: the store is %s-protected; opened with a TPM", ErrWrongProtector, rec.protection)
	}
	// Check what can be checked before asking the TPM, so the error says
	// why: which TPM, which counter, which PCR.
	name, err := p.t.SRKName()
	if err != nil {
		return nil, fmt.Errorf("unseal KEK: %w", err)
	}
	if !bytes.Equal(name, rec.srkName) {
		return nil, fmt.Errorf("%w: KEK sealed by a different TPM (storage key name %x, this TPM's %x), or this TPM's owner hierarchy was cleared",
			ErrWrongProtector, rec.srkName, name)
	}
	c, err := p.t.OpenCounter(rec.counterIndex)
	if errors.Is(err, tpm.ErrNoCounter) {
		return nil, fmt.Errorf("%w: generation counter 0x%08x is gone from the TPM", ErrWiped, rec.counterIndex)
	}
	if err != nil {
		return nil, fmt.Errorf("unseal KEK: %w", err)
	}
	gen, err := c.Read()
	if err != nil {
		return nil, fmt.Errorf("unseal KEK: %w", err)
	}
	if gen != rec.generation {
		return nil, fmt.Errorf("%w: KEK sealed to generation %d, counter 0x%08x is at %d", ErrWiped, rec.generation, rec.counterIndex, gen)
	}
	policy := tpm.Policy{Counter: c, CounterValue: rec.generation}
	if len(rec.pcrs) > 0 {
		now, err := p.t.PCRValues(rec.pcrs)
		if err != nil {
			return nil, fmt.Errorf("unseal KEK: %w", err)
		}
		var changed []int
		for i, pcr := range rec.pcrs {
			if !bytes.Equal(now[i], rec.pcrValues[i]) {
				changed = append(changed, pcr)
			}
		}
		if len(changed) > 0 {
			return nil, fmt.Errorf("%w: PCR %v changed since the KEK was sealed to PCRs %v (sha256 bank)", ErrPolicy, changed, rec.pcrs)
		}
		policy.PCRs = rec.pcrs
	}
	kek, err := p.t.Unseal(rec.sealed, policy)
	switch {
	case errors.Is(err, tpm.ErrBadBlob):
		return nil, corrupt("sealed KEK", err)
	case errors.Is(err, tpm.ErrPolicy):
		// The values matched a moment ago: a PCR moved in between.
		return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
	case err != nil:
		return nil, fmt.Errorf("unseal KEK: %w", err)
	}
	return kek, nil
}

// destroy increments the generation counter: every KEK sealed to the old
// value, in this store or in any copy of it, can never be unsealed again.
// The counter itself is kept, as counters must be (see tpm.Counter).
func (p *tpmProtector) destroy(rec *kekRecord) error {
	index := p.genCounter
	if rec != nil && rec.protection == ProtectionTPM {
		index = rec.counterIndex
	}
	c, err := p.t.OpenCounter(index)
	if errors.Is(err, tpm.ErrNoCounter) {
		return nil // nothing was ever sealed to it
	}
	if err != nil {
		return fmt.Errorf("destroy KEK: %w", err)
	}
	if err := c.Increment(); err != nil {
		return fmt.Errorf("destroy KEK: %w", err)
	}
	return nil
}

func (p *tpmProtector) newIdentityKey() (*identityKey, error) {
	b, err := p.t.CreateSigningKey()
	if err != nil {
		return nil, fmt.Errorf("create identity key: %w", err)
	}
	return &identityKey{protection: ProtectionTPM, tpmBlob: b}, nil
}

func (p *tpmProtector) newSealingKey() (*identityKey, error) {
	b, err := p.t.CreateECDHKey()
	if err != nil {
		return nil, fmt.Errorf("create sealing key: %w", err)
	}
	return &identityKey{protection: ProtectionTPM, tpmBlob: b}, nil
}

func (p *tpmProtector) sealingPublic(k *identityKey) (*ecdh.PublicKey, error) {
	if k.protection != ProtectionTPM {
		return nil, fmt.Errorf("%w: sealing key is %s, protector is a TPM", ErrWrongProtector, k.protection)
	}
	info, err := tpm.ECDHKey(k.tpmBlob)
	if err != nil {
		return nil, corrupt("sealing key", err)
	}
	return info.Public, nil
}

func (p *tpmProtector) zgen(k *identityKey, peer *ecdh.PublicKey) ([]byte, error) {
	if k.protection != ProtectionTPM {
		return nil, fmt.Errorf("%w: sealing key is %s, protector is a TPM", ErrWrongProtector, k.protection)
	}
	z, err := p.t.ECDHZGen(k.tpmBlob, peer)
	if errors.Is(err, tpm.ErrBadBlob) {
		return nil, corrupt("sealing key", err)
	}
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	return z, nil
}

func (p *tpmProtector) loadSigner(k *identityKey) (signer, error) {
	if k.protection != ProtectionTPM {
		return nil, fmt.Errorf("%w: identity key is %s, protector is a TPM", ErrWrongProtector, k.protection)
	}
	s, err := p.t.LoadSigner(k.tpmBlob)
	if errors.Is(err, tpm.ErrBadBlob) {
		return nil, corrupt("identity key", err)
	}
	if err != nil {
		return nil, fmt.Errorf("load identity key: %w", err)
	}
	return s, nil
}
