package update

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// The updater's records live in one bucket of the agent's bbolt file:
//
//	bucket "update"
//	  "slot/<name>"        JSON SlotRecord
//	  "install/last"       JSON InstallRecord
//	  "floor"              u64 big-endian: the state-file anti-rollback floor
//	  "knownbad/<sha256>"  JSON knownBad: images that rolled back
var (
	bucketName  = []byte("update")
	keyLast     = []byte("install/last")
	keyFloor    = []byte("floor")
	prefixSlot  = "slot/"
	prefixKnown = "knownbad/"
)

// Slot states.
const (
	StateGood       = "good"       // booted and marked good
	StatePending    = "pending"    // written and made primary, not yet marked good
	StateBad        = "bad"        // rolled back, or an install into it failed or was cut
	StateInstalling = "installing" // an install is writing it (or died doing so)
	StateUnknown    = "unknown"    // never installed or marked by this updater
)

// Install outcomes, in the order an install moves through them.
const (
	OutcomeInstalling  = "installing"  // slot marked unbootable, being written
	OutcomeFailed      = "failed"      // refused or failed after writing began; old slot kept
	OutcomeWritten     = "written"     // slot complete on disk, boot order not yet switched
	OutcomeSwitched    = "switched"    // boot order names the new slot; reboot pending
	OutcomeBooted      = "booted"      // the new slot booted; waiting for mark-good
	OutcomeGood        = "good"        // the new slot was marked good
	OutcomeRolledBack  = "rolled_back" // the system came back up in the old slot
	OutcomeInterrupted = "interrupted" // a reboot came before the boot order switched
)

// SlotRecord is what the updater knows about a slot's contents.
type SlotRecord struct {
	State           string     `json:"state"`
	Version         string     `json:"bundle_version,omitempty"`
	SecurityVersion uint64     `json:"security_version"`
	SHA256          string     `json:"sha256,omitempty"`
	Size            int64      `json:"size,omitempty"`
	Compatible      string     `json:"compatible,omitempty"`
	InstalledAt     *time.Time `json:"installed_at,omitempty"`
	MarkedGoodAt    *time.Time `json:"marked_good_at,omitempty"`
	// Assumed is true when SecurityVersion was not read from a bundle:
	// the slot was there before this updater recorded it (the factory
	// image) and is taken to be at the floor of that moment.
	Assumed bool `json:"security_version_assumed,omitempty"`
	// ConfirmedBoot is the boot ID in which ConfirmBoot or MarkGood last
	// restored this slot's attempt counter; GoodBoot the boot ID in which
	// MarkGood last passed. Status compares them with this boot's.
	ConfirmedBoot string `json:"confirmed_boot,omitempty"`
	GoodBoot      string `json:"good_boot,omitempty"`
}

// InstallRecord describes the last install.
type InstallRecord struct {
	Target          string     `json:"target"`
	Bundle          string     `json:"bundle"`
	Version         string     `json:"version,omitempty"`
	SecurityVersion uint64     `json:"security_version"`
	SHA256          string     `json:"sha256,omitempty"`
	BootID          string     `json:"boot_id"`
	StartedAt       time.Time  `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	Outcome         string     `json:"outcome"`
	Error           string     `json:"error,omitempty"`
}

type knownBad struct {
	Version string    `json:"version,omitempty"`
	Slot    string    `json:"slot"`
	At      time.Time `json:"at"`
}

// records is a snapshot of the bucket.
type records struct {
	slots map[string]SlotRecord // by slot name; absent when never recorded
	last  *InstallRecord        // nil when no install happened
	bad   map[string]knownBad   // by image sha256 hex
}

func ensureBucket(db *bbolt.DB) error {
	return db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketName)
		return err
	})
}

func loadRecords(tx *bbolt.Tx) (records, error) {
	r := records{slots: map[string]SlotRecord{}, bad: map[string]knownBad{}}
	b := tx.Bucket(bucketName)
	if b == nil {
		return r, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		key := string(k)
		switch {
		case key == string(keyLast):
			var rec InstallRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("record %s: %w", key, err)
			}
			r.last = &rec
		case len(key) > len(prefixSlot) && key[:len(prefixSlot)] == prefixSlot:
			var rec SlotRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("record %s: %w", key, err)
			}
			r.slots[key[len(prefixSlot):]] = rec
		case len(key) > len(prefixKnown) && key[:len(prefixKnown)] == prefixKnown:
			var rec knownBad
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("record %s: %w", key, err)
			}
			r.bad[key[len(prefixKnown):]] = rec
		}
		return nil
	})
	return r, err
}

func putJSON(tx *bbolt.Tx, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	bk := tx.Bucket(bucketName)
	if bk == nil {
		return errors.New("update bucket missing")
	}
	return bk.Put([]byte(key), b)
}

// save writes the changed parts of r: every slot, last, and the known-bad
// set (entries missing from r.bad are deleted).
func saveRecords(tx *bbolt.Tx, r records) error {
	bk := tx.Bucket(bucketName)
	if bk == nil {
		return errors.New("update bucket missing")
	}
	for name, rec := range r.slots {
		if err := putJSON(tx, prefixSlot+name, rec); err != nil {
			return err
		}
	}
	if r.last != nil {
		if err := putJSON(tx, string(keyLast), r.last); err != nil {
			return err
		}
	}
	var stale [][]byte
	c := bk.Cursor()
	for k, _ := c.Seek([]byte(prefixKnown)); k != nil && len(k) > len(prefixKnown) && string(k[:len(prefixKnown)]) == prefixKnown; k, _ = c.Next() {
		if _, ok := r.bad[string(k[len(prefixKnown):])]; !ok {
			stale = append(stale, append([]byte(nil), k...))
		}
	}
	for _, k := range stale {
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
	for sha, kb := range r.bad {
		if err := putJSON(tx, prefixKnown+sha, kb); err != nil {
			return err
		}
	}
	return nil
}

func (u *Updater) load() (records, error) {
	var r records
	err := u.db.View(func(tx *bbolt.Tx) error {
		var err error
		r, err = loadRecords(tx)
		return err
	})
	if err != nil {
		return records{}, fmt.Errorf("read update records: %w", err)
	}
	return r, nil
}

// store replaces the records with r in one transaction (bbolt syncs on
// commit).
func (u *Updater) store(r records) error {
	if err := u.db.Update(func(tx *bbolt.Tx) error { return saveRecords(tx, r) }); err != nil {
		return fmt.Errorf("write update records: %w", err)
	}
	return nil
}

func readFloorKey(tx *bbolt.Tx) uint64 {
	b := tx.Bucket(bucketName)
	if b == nil {
		return 0
	}
	v := b.Get(keyFloor)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}
