package tpm

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// maxSealed is MAX_SYM_DATA, the most a keyed-hash data object can hold
// (TPM 2.0 Part 2 §11.1.14 TPM2B_SENSITIVE_DATA; 128 on every TPM we know).
const maxSealed = 128

// Blob is a TPM object created under the SRK, as TPM2_Create returned it:
// the public area (TPM2B_PUBLIC contents) and the private area
// (TPM2B_PRIVATE contents), which the TPM encrypted and integrity-protected
// with a key derived from the SRK. Only the same TPM, with the same owner
// hierarchy, can load it; both parts may be stored anywhere.
type Blob struct {
	Public  []byte
	Private []byte
}

// Policy is what a sealed object requires before the TPM unseals it. The
// zero Policy requires nothing but the (empty) object authorization.
type Policy struct {
	// PCRs are SHA-256 bank PCR indices the object is bound to; empty means
	// no PCR binding.
	PCRs []int
	// PCRDigest is PCRDigest of the PCR values to bind to. Nil when sealing
	// means the current values. Ignored when PCRs is empty.
	PCRDigest []byte
	// Counter, when not nil, binds the object to the NV counter holding
	// exactly CounterValue (TPM2_PolicyNV, TPM_EO_EQ): incrementing the
	// counter destroys the object for good.
	Counter      *Counter
	CounterValue uint64
}

func (p Policy) empty() bool { return len(p.PCRs) == 0 && p.Counter == nil }

// Seal creates a keyed-hash data object holding secret (at most 128 bytes)
// under the SRK, with FixedTPM and FixedParent so it can never be
// duplicated, and with policy p as its only authorization. The secret
// travels to the TPM encrypted in a session salted to the SRK.
func (t *TPM) Seal(secret []byte, p Policy) (Blob, error) {
	if len(secret) == 0 || len(secret) > maxSealed {
		return Blob{}, fmt.Errorf("seal: secret is %d bytes, want 1..%d", len(secret), maxSealed)
	}
	pcrs, err := NormalizePCRs(p.PCRs)
	if err != nil {
		return Blob{}, fmt.Errorf("seal: %w", err)
	}
	var blob Blob
	err = t.do("seal", func(srk *object) error {
		tmpl := tpm2.TPMTPublic{
			Type:    tpm2.TPMAlgKeyedHash,
			NameAlg: tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{
				FixedTPM:    true,
				FixedParent: true,
				NoDA:        true,
				// With a policy, the policy is the only way in: TPM 2.0
				// Part 2 §8.3.2 TPMA_OBJECT, userWithAuth CLEAR means
				// USER role actions need a policy session.
				UserWithAuth: p.empty(),
			},
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash,
				&tpm2.TPMSKeyedHashParms{Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull}}),
		}
		if !p.empty() {
			digest, err := t.policyDigestLocked(pcrs, p)
			if err != nil {
				return err
			}
			tmpl.AuthPolicy = tpm2.TPM2BDigest{Buffer: digest}
		}
		rsp, err := tpm2.Create{
			ParentHandle: tpm2.AuthHandle{
				Handle: srk.handle, Name: srk.name,
				Auth: saltedHMAC(srk, nil, tpm2.AESEncryption(128, tpm2.EncryptIn)),
			},
			InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
				Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: secret}),
			}},
			InPublic: tpm2.New2B(tmpl),
		}.Execute(t.tr)
		if err != nil {
			return err
		}
		blob = Blob{Public: slices.Clone(rsp.OutPublic.Bytes()), Private: slices.Clone(rsp.OutPrivate.Buffer)}
		return nil
	})
	return blob, err
}

// policyDigestLocked computes the authPolicy of a sealed object in
// software, in the order Unseal replays it: PolicyPCR, then PolicyNV.
func (t *TPM) policyDigestLocked(pcrs []int, p Policy) ([]byte, error) {
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, err
	}
	if len(pcrs) > 0 {
		digest := p.PCRDigest
		if digest == nil {
			values, err := t.pcrValuesLocked(pcrs)
			if err != nil {
				return nil, err
			}
			digest = PCRDigest(values)
		}
		if len(digest) != sha256.Size {
			return nil, fmt.Errorf("PCR digest is %d bytes, want %d", len(digest), sha256.Size)
		}
		if err := (tpm2.PolicyPCR{PcrDigest: tpm2.TPM2BDigest{Buffer: digest}, Pcrs: pcrSelection(pcrs)}).Update(calc); err != nil {
			return nil, fmt.Errorf("policy PCR digest: %w", err)
		}
	}
	if p.Counter != nil {
		nv, err := p.Counter.publicLocked()
		if err != nil {
			return nil, err
		}
		if err := policyNV(nv, p.CounterValue, nil).Update(calc); err != nil {
			return nil, fmt.Errorf("policy NV digest: %w", err)
		}
	}
	return calc.Hash().Digest, nil
}

// policyNV is TPM2_PolicyNV asserting that the counter holds exactly value.
// The counter's own (empty) authorization authorizes the read, which its
// TPMA_NV_AUTHREAD permits.
func policyNV(nv *nvPublic, value uint64, session tpm2.Session) tpm2.PolicyNV {
	var operand [8]byte
	binary.BigEndian.PutUint64(operand[:], value)
	cmd := tpm2.PolicyNV{
		AuthHandle: tpm2.AuthHandle{Handle: nv.index, Name: nv.name, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: nv.index, Name: nv.name},
		OperandB:   tpm2.TPM2BOperand{Buffer: operand[:]},
		Offset:     0,
		Operation:  tpm2.TPMEOEq,
	}
	if session != nil {
		cmd.PolicySession = session.Handle()
	}
	return cmd
}

// Unseal loads a blob made by Seal and returns its secret, which travels
// back encrypted in a session salted to the SRK. It returns an error
// wrapping ErrBadBlob when the TPM will not load the blob and ErrPolicy when
// p is not satisfied (a bound PCR changed, or the counter moved). p must
// name the same PCRs and counter the blob was sealed with; PCRDigest is
// ignored, the TPM compares the current values.
func (t *TPM) Unseal(b Blob, p Policy) ([]byte, error) {
	pcrs, err := NormalizePCRs(p.PCRs)
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	var secret []byte
	err = t.do("unseal", func(srk *object) error {
		obj, err := t.loadLocked(srk, b)
		if err != nil {
			return err
		}
		// The flush error cannot change the outcome: the secret is already
		// out, or the unseal already failed.
		defer func() { _ = t.flush(obj.handle) }()

		if p.empty() {
			rsp, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{
				Handle: obj.handle, Name: obj.name,
				Auth: saltedHMAC(srk, nil, tpm2.AESEncryption(128, tpm2.EncryptOut)),
			}}.Execute(t.tr)
			if err != nil {
				return err
			}
			secret = rsp.OutData.Buffer
			return nil
		}

		sess, closeSess, err := tpm2.PolicySession(t.tr, tpm2.TPMAlgSHA256, 16,
			tpm2.Salted(srk.handle, srk.public),
			tpm2.AESEncryption(128, tpm2.EncryptOut))
		if err != nil {
			return fmt.Errorf("start policy session: %w", err)
		}
		// A failed command leaves the session loaded; a successful Unseal
		// with continueSession set does too. Either way it must go, and a
		// flush error here cannot change the outcome.
		defer func() { _ = closeSess() }()
		if len(pcrs) > 0 {
			// An empty pcrDigest makes the TPM use the current values; the
			// final comparison with authPolicy is what refuses a change.
			if _, err := (tpm2.PolicyPCR{PolicySession: sess.Handle(), Pcrs: pcrSelection(pcrs)}).Execute(t.tr); err != nil {
				return fmt.Errorf("policy PCR: %w", err)
			}
		}
		if p.Counter != nil {
			nv, err := p.Counter.publicLocked()
			if err != nil {
				return err
			}
			if _, err := policyNV(nv, p.CounterValue, sess).Execute(t.tr); err != nil {
				if errors.Is(err, tpm2.TPMRCPolicy) {
					return fmt.Errorf("%w: NV counter 0x%08x does not hold %d", ErrPolicy, uint32(nv.index), p.CounterValue)
				}
				return fmt.Errorf("policy NV: %w", err)
			}
		}
		rsp, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: obj.handle, Name: obj.name, Auth: sess}}.Execute(t.tr)
		if err != nil {
			if errors.Is(err, tpm2.TPMRCPolicyFail) {
				return fmt.Errorf("%w: PCR values differ from those sealed to (%v)", ErrPolicy, err)
			}
			return err
		}
		secret = rsp.OutData.Buffer
		return nil
	})
	return secret, err
}

// loadLocked loads a blob under the SRK. Parameter errors from TPM2_Load
// (integrity, size, value) mean the blob itself is wrong.
func (t *TPM) loadLocked(srk *object, b Blob) (*object, error) {
	if len(b.Public) == 0 || len(b.Private) == 0 {
		return nil, fmt.Errorf("%w: empty public or private area", ErrBadBlob)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b.Public)
	if err != nil {
		return nil, fmt.Errorf("%w: public area: %v", ErrBadBlob, err)
	}
	rsp, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: srk.handle, Name: srk.name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    tpm2.TPM2BPrivate{Buffer: b.Private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](b.Public),
	}.Execute(t.tr)
	if err != nil {
		var f1 tpm2.TPMFmt1Error
		if errors.As(err, &f1) {
			if isParam, _ := f1.Parameter(); isParam {
				return nil, fmt.Errorf("%w: load: %v", ErrBadBlob, err)
			}
		}
		return nil, fmt.Errorf("load: %w", err)
	}
	return &object{handle: rsp.ObjectHandle, name: rsp.Name, public: *pub}, nil
}
