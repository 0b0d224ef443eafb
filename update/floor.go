package update

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"
)

// Floor is the anti-rollback floor: the lowest security version a bundle
// may have. AdvanceTo never lowers it. hal/tpm's NV counter implements it
// for phones; StateFloor keeps it in the state file where there is no TPM.
type Floor interface {
	Read() (uint64, error)
	AdvanceTo(n uint64) error
}

// Floor kinds reported by Status.
const (
	// FloorTPM is a TPM NV counter: monotonic in hardware; a root attacker
	// cannot lower it.
	FloorTPM = "tpm-nv"
	// FloorStateFile is a value in the state database: anyone who can
	// write the data partition can lower it. Weaker, and said so in status.
	FloorStateFile = "state-file"
)

// StateFloor keeps the floor under key "floor" in bucket "update" of a
// bbolt database.
type StateFloor struct {
	db *bbolt.DB
}

// NewStateFloor returns the state-file floor in db.
func NewStateFloor(db *bbolt.DB) (*StateFloor, error) {
	if db == nil {
		return nil, errors.New("state floor: nil database")
	}
	if err := ensureBucket(db); err != nil {
		return nil, fmt.Errorf("state floor: %w", err)
	}
	return &StateFloor{db: db}, nil
}

// Read returns the floor; 0 when never advanced.
func (f *StateFloor) Read() (uint64, error) {
	var n uint64
	err := f.db.View(func(tx *bbolt.Tx) error { n = readFloorKey(tx); return nil })
	return n, err
}

// AdvanceTo raises the floor to n; a lower or equal n changes nothing.
func (f *StateFloor) AdvanceTo(n uint64) error {
	return f.db.Update(func(tx *bbolt.Tx) error {
		if readFloorKey(tx) >= n {
			return nil
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], n)
		b := tx.Bucket(bucketName)
		if b == nil {
			return errors.New("update bucket missing")
		}
		return b.Put(keyFloor, v[:])
	})
}
