package tufrepo

import (
	"errors"
	"fmt"
)

// ErrKeyFile is returned for a key file that is not a PKCS#8 ECDSA P-256 or
// Ed25519 private key, or a PKIX public key of those, or whose permissions
// let anyone but its owner read it.
var ErrKeyFile = errors.New("tufrepo: key file refused")

// ErrNotMember is returned when a key signs for a role that does not list
// it.
var ErrNotMember = errors.New("tufrepo: key is not one of the role's keys")

// ErrExists is returned by Init for a directory that already holds a
// repository, and by GenerateKey for an existing file.
var ErrExists = errors.New("tufrepo: already exists")

// ErrNoRepository is returned by Open for a directory that is not a
// repository made by Init.
var ErrNoRepository = errors.New("tufrepo: not a repository")

// ErrNothingStaged is returned when a signature is added to a role that has
// nothing waiting for one.
var ErrNothingStaged = errors.New("tufrepo: nothing staged for the role")

// ThresholdError says a role's metadata has fewer valid signatures than its
// threshold. Publication stops at it; the metadata stays staged.
type ThresholdError struct {
	Role      string
	Have      int
	Threshold int
	// Under names the root whose keys were counted ("root v3") when a root
	// rotation needs a threshold of both its old and new keys.
	Under string
}

func (e *ThresholdError) Error() string {
	under := ""
	if e.Under != "" {
		under = " under " + e.Under
	}
	return fmt.Sprintf("tufrepo: %s has %d valid signature(s)%s, threshold %d", e.Role, e.Have, under, e.Threshold)
}

var (
	errBadName     = errors.New("bad target name")
	errBadDeviceID = errors.New("bad device ID")
	errRole        = errors.New("unknown role")
)
