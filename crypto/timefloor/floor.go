package timefloor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The floor lives in its own bucket of the agent's state file:
//
//	bucket "timefloor"
//	  "floor"   i64 big-endian: Unix microseconds
//	  "source"  what raised it last (for status), at most 64 bytes
var (
	bucketName = []byte("timefloor")
	keyFloor   = []byte("floor")
	keySource  = []byte("source")
)

// maxSourceLen bounds the recorded source name.
const maxSourceLen = 64

// ErrNoState: the state file has no stored floor (a new phone).
var ErrNoState = errors.New("time floor: none stored yet")

// Floor is the time floor of one state file. Its methods are safe for
// concurrent use.
type Floor struct {
	db    *bolt.DB
	clock func() time.Time
	build time.Time

	mu     sync.Mutex // guards floor and source
	floor  time.Time
	source string
}

// Option configures Open.
type Option func(*Floor) error

// WithClock sets the clock the floor corrects (default time.Now): tests
// play a clock that was wound back with it.
func WithClock(now func() time.Time) Option {
	return func(f *Floor) error {
		if now == nil {
			return errors.New("time floor: nil clock")
		}
		f.clock = now
		return nil
	}
}

// Open reads the floor stored in db (creating the bucket) and raises it to
// build, the firmware's build time. db may be nil: a phone without a state
// file keeps only the build time.
func Open(db *bolt.DB, build time.Time, opts ...Option) (*Floor, error) {
	f := &Floor{db: db, clock: time.Now, build: build.UTC(), floor: build.UTC(), source: "build"}
	for _, o := range opts {
		if err := o(f); err != nil {
			return nil, err
		}
	}
	if db == nil {
		return f, nil
	}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return err
		}
		t, src, err := decode(b)
		if errors.Is(err, ErrNoState) {
			return nil
		}
		if err != nil {
			return err
		}
		if t.After(f.floor) {
			f.floor, f.source = t, src
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("time floor: %w", err)
	}
	return f, nil
}

func decode(b *bolt.Bucket) (time.Time, string, error) {
	v := b.Get(keyFloor)
	if v == nil {
		return time.Time{}, "", ErrNoState
	}
	if len(v) != 8 {
		return time.Time{}, "", fmt.Errorf("stored floor is %d bytes, want 8", len(v))
	}
	t := time.UnixMicro(int64(binary.BigEndian.Uint64(v))).UTC()
	src := string(b.Get(keySource))
	if len(src) > maxSourceLen {
		src = src[:maxSourceLen]
	}
	return t, src, nil
}

// Read returns the floor stored in db without opening it for writing:
// PID 1 reads it at boot to set a clock that is behind.
func Read(db *bolt.DB) (time.Time, string, error) {
	var (
		t   time.Time
		src string
	)
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName)
		if b == nil {
			return ErrNoState
		}
		var err error
		t, src, err = decode(b)
		return err
	})
	return t, src, err
}

// Now is the time every check uses: the clock, or the floor when the clock
// is behind it.
func (f *Floor) Now() time.Time {
	now := f.clock()
	f.mu.Lock()
	floor := f.floor
	f.mu.Unlock()
	if now.Before(floor) {
		return floor
	}
	return now
}

// Floor returns the floor and what raised it last.
func (f *Floor) Floor() (time.Time, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.floor, f.source
}

// Behind reports how far the clock is behind the floor (0 when it is not).
func (f *Floor) Behind() time.Duration {
	floor, _ := f.Floor()
	if d := floor.Sub(f.clock()); d > 0 {
		return d
	}
	return 0
}

// Advance raises the floor to t, a time the phone has securely seen, and
// persists it; an earlier or equal t changes nothing. source says what t
// is ("registrar certificate", "director timestamp"). Only pass times that
// an authenticated party vouched for: the floor never comes down.
func (f *Floor) Advance(t time.Time, source string) error {
	t = t.UTC().Truncate(time.Microsecond)
	if len(source) > maxSourceLen {
		source = source[:maxSourceLen]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !t.After(f.floor) {
		return nil
	}
	if f.db != nil {
		err := f.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketName)
			if err != nil {
				return err
			}
			// Another process may have raised it meanwhile: never lower.
			if stored, _, err := decode(b); err == nil && !t.After(stored) {
				return nil
			}
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], uint64(t.UnixMicro()))
			if err := b.Put(keyFloor, v[:]); err != nil {
				return err
			}
			return b.Put(keySource, []byte(source))
		})
		if err != nil {
			return fmt.Errorf("time floor: %w", err)
		}
	}
	f.floor, f.source = t, source
	return nil
}
