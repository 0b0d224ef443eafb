package fleetconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// The record in the state file:
//
//	fleetconfig/          bucket owned by this package
//	  state               the JSON of record (below), written whole
var (
	bucket   = []byte("fleetconfig")
	keyState = []byte("state")
)

// Bounds on what is stored: a document as large as the director allows,
// the accounts a trial watches, and reasons.
const (
	MaxDocument = 1 << 20
	maxWatch    = 64
	maxName     = 128
	maxReason   = 512
	// maxRecord bounds the stored record read back: two documents in
	// base64 and the rest.
	maxRecord = 3*MaxDocument + 64<<10
)

// Doc is a configuration document and its version, as the director
// signed them.
type Doc struct {
	Version uint64 `json:"version"`
	Data    []byte `json:"data"`
}

// SHA256 is the document's hash in hex (for logs and reports).
func (d *Doc) SHA256() string {
	sum := sha256.Sum256(d.Data)
	return hex.EncodeToString(sum[:])
}

// Outcome is a refused or reverted document.
type Outcome struct {
	Version uint64    `json:"version"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// State is the record: what the phone runs and what it fell back from.
type State struct {
	// Current is the document the phone runs over its image's config; nil
	// means the image's config alone.
	Current *Doc `json:"current,omitempty"`
	// Trial is true while Current is not proven yet. Since is when it was
	// applied, Starts how many agent starts it has had on trial, Watch the
	// accounts that were registered before it and must register again.
	Trial  bool      `json:"trial,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	Starts int       `json:"starts,omitempty"`
	Watch  []string  `json:"watch,omitempty"`
	// Previous is the last good document before Current (nil: the
	// image's config alone); Revert goes back to it.
	Previous *Doc `json:"previous,omitempty"`
	// Reverted is the last document reverted, Refused the last one
	// refused before it was applied; nil for none.
	Reverted *Outcome `json:"reverted,omitempty"`
	Refused  *Outcome `json:"refused,omitempty"`
}

// Version is the current document's version, 0 for none.
func (s State) Version() uint64 {
	if s.Current == nil {
		return 0
	}
	return s.Current.Version
}

// GoodVersion is the version of the last good document: the current one
// when it is not on trial, else the previous one (0: none).
func (s State) GoodVersion() uint64 {
	switch {
	case !s.Trial:
		return s.Version()
	case s.Previous != nil:
		return s.Previous.Version
	}
	return 0
}

// Store is the record in an open state file. Its methods may be called
// from any goroutine; each change is one transaction.
type Store struct {
	db *bolt.DB
	mu sync.Mutex // serialises read-modify-write of the record
}

// Open creates the bucket if needed and checks that the stored record
// parses (ErrState if not: nothing is changed).
func Open(db *bolt.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("fleetconfig: nil state file")
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		return nil, fmt.Errorf("fleetconfig: %w", err)
	}
	s := &Store{db: db}
	if _, err := s.State(); err != nil {
		return nil, err
	}
	return s, nil
}

// State reads the record.
func (s *Store) State() (State, error) {
	var st State
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		st, err = read(tx)
		return err
	})
	return st, err
}

func read(tx *bolt.Tx) (State, error) {
	var st State
	b := tx.Bucket(bucket)
	if b == nil {
		return st, nil
	}
	v := b.Get(keyState)
	if v == nil {
		return st, nil
	}
	if len(v) > maxRecord {
		return st, fmt.Errorf("%w: %d bytes", ErrState, len(v))
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return State{}, fmt.Errorf("%w: %v", ErrState, err)
	}
	return st, nil
}

// update applies f to the record and writes it in one transaction; an
// error from f changes nothing.
func (s *Store) update(f func(*State) error) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out State
	err := s.db.Update(func(tx *bolt.Tx) error {
		st, err := read(tx)
		if err != nil {
			return err
		}
		if err := f(&st); err != nil {
			return err
		}
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		bk, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		out = st
		return bk.Put(keyState, b)
	})
	if err != nil {
		return State{}, err
	}
	return out, nil
}

// Apply makes doc the current document, on trial from now, with watch the
// accounts registered at this moment (they must register again under
// it). The good document it replaces becomes the previous one; a
// document still on trial is simply superseded (the previous stays the
// last good one, and the accounts it had to prove stay watched). A
// version not above the current one is ErrOld, the reverted version
// ErrReverted; either changes nothing.
func (s *Store) Apply(doc Doc, watch []string, now time.Time) (State, error) {
	if len(doc.Data) == 0 || len(doc.Data) > MaxDocument {
		return State{}, fmt.Errorf("fleetconfig: document of %d bytes: want 1..%d", len(doc.Data), MaxDocument)
	}
	if doc.Version == 0 {
		return State{}, errors.New("fleetconfig: document version 0")
	}
	w, err := checkWatch(watch)
	if err != nil {
		return State{}, err
	}
	return s.update(func(st *State) error {
		if st.Current != nil && doc.Version <= st.Current.Version {
			return fmt.Errorf("%w: version %d, current %d", ErrOld, doc.Version, st.Current.Version)
		}
		if st.Reverted != nil && doc.Version == st.Reverted.Version {
			return fmt.Errorf("%w: version %d (%s)", ErrReverted, doc.Version, st.Reverted.Reason)
		}
		if st.Trial {
			for _, n := range st.Watch {
				if !slices.Contains(w, n) && len(w) < maxWatch {
					w = append(w, n)
				}
			}
		} else {
			st.Previous = st.Current
		}
		d := Doc{Version: doc.Version, Data: append([]byte(nil), doc.Data...)}
		st.Current, st.Trial, st.Since, st.Starts, st.Watch = &d, true, now.UTC(), 0, w
		if st.Refused != nil && st.Refused.Version <= doc.Version {
			st.Refused = nil
		}
		return nil
	})
}

func checkWatch(watch []string) ([]string, error) {
	if len(watch) > maxWatch {
		return nil, fmt.Errorf("fleetconfig: %d accounts to watch, want at most %d", len(watch), maxWatch)
	}
	out := make([]string, 0, len(watch))
	for _, n := range watch {
		if n == "" || len(n) > maxName {
			return nil, fmt.Errorf("fleetconfig: account name of %d bytes, want 1..%d", len(n), maxName)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Started counts an agent start under the current trial (nothing when no
// document is on trial) and returns the record.
func (s *Store) Started() (State, error) {
	return s.update(func(st *State) error {
		if st.Trial {
			st.Starts++
		}
		return nil
	})
}

// MarkGood ends the trial: the current document is proven.
func (s *Store) MarkGood() (State, error) {
	return s.update(func(st *State) error {
		if !st.Trial {
			return ErrNoTrial
		}
		st.Trial, st.Starts, st.Watch = false, 0, nil
		return nil
	})
}

// Revert puts the previous good document back (none: the image's config
// alone) and records the current one as reverted, for reason.
func (s *Store) Revert(reason string, now time.Time) (State, error) {
	return s.update(func(st *State) error {
		if !st.Trial || st.Current == nil {
			return ErrNoTrial
		}
		st.Reverted = &Outcome{Version: st.Current.Version, Reason: cut(reason), At: now.UTC()}
		st.Current, st.Previous = st.Previous, nil
		st.Trial, st.Since, st.Starts, st.Watch = false, time.Time{}, 0, nil
		return nil
	})
}

// Refuse records a document refused before it was applied (it did not
// validate), so it is reported and not fetched again.
func (s *Store) Refuse(version uint64, reason string, now time.Time) (State, error) {
	return s.update(func(st *State) error {
		st.Refused = &Outcome{Version: version, Reason: cut(reason), At: now.UTC()}
		return nil
	})
}

// cut bounds a reason, at a UTF-8 boundary.
func cut(s string) string {
	if len(s) <= maxReason {
		return s
	}
	s = s[:maxReason]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
