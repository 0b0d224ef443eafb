package update

import (
	"errors"

	"github.com/hardphone/hardphone/update/bundle"
)

// Sentinels callers branch on. A refused install wraps one of them (or one
// of bundle's: ErrBadSignature, ErrCorrupt, ErrUnsupported), and left the
// slots, the boot environment and the floor untouched.
var (
	// ErrBadSignature: the bundle is not proven to come from the keyring's
	// signers (bundle.ErrBadSignature, re-exported).
	ErrBadSignature = bundle.ErrBadSignature
	// ErrIncompatible: the bundle is for another board (compatible) or has
	// images for slot classes this board lacks.
	ErrIncompatible = errors.New("bundle not compatible with this board")
	// ErrRollback: the bundle's security version is below the
	// anti-rollback floor.
	ErrRollback = errors.New("bundle security version below the anti-rollback floor")
	// ErrTooLarge: an image does not fit its slot.
	ErrTooLarge = errors.New("image larger than the slot")
	// ErrKnownBad: this image was installed before and the boot rolled
	// back; only InstallOptions.Force installs it again.
	ErrKnownBad = errors.New("image rolled back before")
	// ErrBelowFloor: the booted slot's security version is below the
	// anti-rollback floor. Booting it is a rollback attack (or a fallback
	// the floor forbids); it is never marked good or confirmed. The error
	// is a *BelowFloorError with the versions and the slot restored.
	ErrBelowFloor = errors.New("booted slot below the anti-rollback floor")
)

var (
	errNoBootedSlot = errors.New("booted slot unknown")
	errConfig       = errors.New("invalid updater config")
	errNotGood      = errors.New("booted slot not marked good")
)
