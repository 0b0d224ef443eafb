package store

import (
	"encoding/hex"
	"fmt"
	"time"
)

// MaxImportBatch bounds one ImportAllowList call; a larger manifest is
// imported in batches.
const MaxImportBatch = 10000

// EKHash is the SHA-256 digest of a TPM's endorsement key certificate
// (DER), as a vendor's manifest lists it: the TPM's identity on the
// allow-list, in challenges and in devices.
type EKHash [32]byte

// String is the lowercase hex form.
func (h EKHash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zeros, which no valid record holds.
func (h EKHash) IsZero() bool { return h == EKHash{} }

// ParseEKHash parses 64 hex digits (either case).
func ParseEKHash(s string) (EKHash, error) {
	var h EKHash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("%w: EK hash of %d characters, want %d hex digits", ErrInvalid, len(s), 2*len(h))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return EKHash{}, fmt.Errorf("%w: EK hash: %v", ErrInvalid, err)
	}
	if h.IsZero() {
		return EKHash{}, fmt.Errorf("%w: EK hash is all zeros", ErrInvalid)
	}
	return h, nil
}

// AllowEntry is one device of a vendor manifest the fleet accepts for
// enrolment.
type AllowEntry struct {
	// EK is the SHA-256 of the TPM's EK certificate; the key of the entry.
	EK EKHash
	// Serial is the device's serial number, unique in the allow-list.
	Serial string
	// Model is the device model name.
	Model string
	// Group is the fleet group the device joins on enrolment.
	Group string
	// ImportedAt is when the entry was first imported or last changed.
	ImportedAt time.Time
}

// Validate checks every field.
func (e AllowEntry) Validate() error {
	if e.EK.IsZero() {
		return fmt.Errorf("%w: allow-list entry %q: zero EK hash", ErrInvalid, e.Serial)
	}
	if err := checkSerial(e.Serial); err != nil {
		return fmt.Errorf("allow-list entry %s: %w", e.EK, err)
	}
	if err := checkName("model", e.Model); err != nil {
		return fmt.Errorf("allow-list entry %s: %w", e.EK, err)
	}
	if err := checkName("group", e.Group); err != nil {
		return fmt.Errorf("allow-list entry %s: %w", e.EK, err)
	}
	if err := checkTime("imported_at", e.ImportedAt); err != nil {
		return fmt.Errorf("allow-list entry %s: %w", e.EK, err)
	}
	return nil
}

// SameContent reports whether e and o hold the same serial, model and
// group: an import of o over e changes nothing.
func (e AllowEntry) SameContent(o AllowEntry) bool {
	return e.EK == o.EK && e.Serial == o.Serial && e.Model == o.Model && e.Group == o.Group
}

// ValidateImport checks a whole import batch: size, each entry, and no EK
// or serial twice. An implementation calls it before touching its
// database.
func ValidateImport(entries []AllowEntry) error {
	if len(entries) == 0 {
		return fmt.Errorf("%w: empty allow-list import", ErrInvalid)
	}
	if len(entries) > MaxImportBatch {
		return fmt.Errorf("%w: allow-list import of %d entries, want at most %d", ErrInvalid, len(entries), MaxImportBatch)
	}
	eks := make(map[EKHash]struct{}, len(entries))
	serials := make(map[string]struct{}, len(entries))
	for i, e := range entries {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if _, dup := eks[e.EK]; dup {
			return fmt.Errorf("%w: entry %d: EK %s twice in the import", ErrInvalid, i, e.EK)
		}
		if _, dup := serials[e.Serial]; dup {
			return fmt.Errorf("%w: entry %d: serial %q twice in the import", ErrExists, i, e.Serial)
		}
		eks[e.EK] = struct{}{}
		serials[e.Serial] = struct{}{}
	}
	return nil
}

// ImportResult counts what an import did.
type ImportResult struct {
	// Added counts new entries, Updated entries whose serial, model or
	// group changed, Unchanged identical re-imports.
	Added, Updated, Unchanged int
}

// ParseEKCursor parses a ListAllowed cursor; "" is the start.
func ParseEKCursor(after string) (ek EKHash, start bool, err error) {
	if after == "" {
		return EKHash{}, true, nil
	}
	ek, err = ParseEKHash(after)
	if err != nil {
		return EKHash{}, false, fmt.Errorf("page cursor: %w", err)
	}
	return ek, false, nil
}
