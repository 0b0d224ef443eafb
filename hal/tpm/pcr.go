package tpm

import (
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// NumPCRs is the number of PCRs a PC Client TPM has and a selection may
// name (the TCG PC Client Platform TPM Profile requires at least 24).
const NumPCRs = 24

// NormalizePCRs returns pcrs sorted ascending without duplicates, the order
// in which TPM2_PolicyPCR concatenates PCR values (TPM 2.0 Part 3 §23.7).
// Indices outside [0, NumPCRs) are an error.
func NormalizePCRs(pcrs []int) ([]int, error) {
	out := slices.Clone(pcrs)
	for _, p := range out {
		if p < 0 || p >= NumPCRs {
			return nil, fmt.Errorf("%w: %d not in [0, %d)", errBadPCR, p, NumPCRs)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// pcrSelection selects pcrs (already normalized) in the SHA-256 bank.
func pcrSelection(pcrs []int) tpm2.TPMLPCRSelection {
	sel := make([]uint, len(pcrs))
	for i, p := range pcrs {
		sel[i] = uint(p)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(sel...),
	}}}
}

// PCRValues reads the SHA-256 bank values of pcrs (normalized first) and
// returns them in ascending PCR order, one 32-byte value each.
func (t *TPM) PCRValues(pcrs []int) ([][]byte, error) {
	pcrs, err := NormalizePCRs(pcrs)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	err = t.locked("read PCRs", func() error {
		out, err = t.pcrValuesLocked(pcrs)
		return err
	})
	return out, err
}

func (t *TPM) pcrValuesLocked(pcrs []int) ([][]byte, error) {
	values := map[int][]byte{}
	remaining := slices.Clone(pcrs)
	// TPM2_PCR_Read (TPM 2.0 Part 3 §22.4) answers in a TPML_DIGEST, which
	// holds at most eight digests, so ask again for what is still missing.
	for len(remaining) > 0 {
		rsp, err := tpm2.PCRRead{PCRSelectionIn: pcrSelection(remaining)}.Execute(t.tr)
		if err != nil {
			return nil, err
		}
		got := selectedPCRs(rsp.PCRSelectionOut)
		if len(got) == 0 || len(got) != len(rsp.PCRValues.Digests) {
			return nil, fmt.Errorf("PCR read returned %d selected and %d values for %d asked", len(got), len(rsp.PCRValues.Digests), len(remaining))
		}
		for i, p := range got {
			if len(rsp.PCRValues.Digests[i].Buffer) != sha256.Size {
				return nil, fmt.Errorf("PCR %d value is %d bytes, want %d", p, len(rsp.PCRValues.Digests[i].Buffer), sha256.Size)
			}
			values[p] = slices.Clone(rsp.PCRValues.Digests[i].Buffer)
		}
		remaining = slices.DeleteFunc(remaining, func(p int) bool { _, ok := values[p]; return ok })
	}
	out := make([][]byte, len(pcrs))
	for i, p := range pcrs {
		out[i] = values[p]
	}
	return out, nil
}

// selectedPCRs lists, ascending, the SHA-256 bank PCRs a selection names.
func selectedPCRs(sel tpm2.TPMLPCRSelection) []int {
	var out []int
	for _, s := range sel.PCRSelections {
		if s.Hash != tpm2.TPMAlgSHA256 {
			continue
		}
		for byteIdx, b := range s.PCRSelect {
			for bit := 0; bit < 8; bit++ {
				if b&(1<<bit) != 0 {
					out = append(out, byteIdx*8+bit)
				}
			}
		}
	}
	return out
}

// PCRDigest is the value TPM2_PolicyPCR compares: SHA-256 over the
// concatenated PCR values in selection order (TPM 2.0 Part 3 §23.7).
func PCRDigest(values [][]byte) []byte {
	h := sha256.New()
	for _, v := range values {
		h.Write(v)
	}
	return h.Sum(nil)
}

// ExtendPCR extends PCR pcr in the SHA-256 bank with digest, a 32-byte
// SHA-256 value: the new value is SHA-256(old || digest) (TPM2_PCR_Extend,
// TPM 2.0 Part 3 §22.2). PCRs 0-16 and 23 are extendable from locality 0 on
// a PC Client TPM.
func (t *TPM) ExtendPCR(pcr int, digest []byte) error {
	if pcr < 0 || pcr >= NumPCRs {
		return fmt.Errorf("extend PCR: %w: %d not in [0, %d)", errBadPCR, pcr, NumPCRs)
	}
	if len(digest) != sha256.Size {
		return fmt.Errorf("extend PCR %d: digest is %d bytes, want %d", pcr, len(digest), sha256.Size)
	}
	return t.locked(fmt.Sprintf("extend PCR %d", pcr), func() error {
		_, err := tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
			Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{
				HashAlg: tpm2.TPMAlgSHA256,
				Digest:  slices.Clone(digest),
			}}},
		}.Execute(t.tr)
		return err
	})
}
