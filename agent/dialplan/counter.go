package dialplan

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxRemembered bounds the calls an account's counter keeps: enough for
// any daily cap the policy allows counting to, and a day is all it needs.
const maxRemembered = 4096

// Counter keeps when each account placed its calls during the last day, in
// the state file (bucket "dialplan", one key per account: u64 Unix seconds,
// oldest first), so caps survive a restart.
type Counter struct {
	db *bolt.DB // nil: in memory only
	mu sync.Mutex
	m  map[string][]time.Time // account -> recent calls, oldest first
}

var bucketName = []byte("dialplan")

// OpenCounter loads the counts from db (nil: keep them in memory).
func OpenCounter(db *bolt.DB) (*Counter, error) {
	c := &Counter{db: db, m: map[string][]time.Time{}}
	if db == nil {
		return c, nil
	}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var ts []time.Time
			for len(v) >= 8 && len(ts) < maxRemembered {
				ts = append(ts, time.Unix(int64(binary.BigEndian.Uint64(v)), 0))
				v = v[8:]
			}
			c.m[string(k)] = ts
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("dialplan counter: %w", err)
	}
	return c, nil
}

// Recent returns the account's calls during the day before now.
func (c *Counter) Recent(account string, now time.Time) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), prune(c.m[account], now)...)
}

// Take checks target against p given the account's calls of the last day
// and, when it may be dialled, records the call at now before returning
// (before the INVITE leaves: an attempt counts whether it connects or
// not). Check and record are one step, so concurrent dials cannot both
// slip under a cap. A call that cannot be recorded in the state file is
// refused: a count that a restart would forget is no cap.
func (c *Counter) Take(account string, p Policy, target Target, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := prune(c.m[account], now)
	if err := p.Check(target, now, ts); err != nil {
		return err
	}
	ts = append(ts, now)
	if len(ts) > maxRemembered {
		ts = ts[len(ts)-maxRemembered:]
	}
	c.m[account] = ts
	if err := c.store(account, ts); err != nil {
		return fmt.Errorf("%w: the call could not be counted: %w", ErrRefused, err)
	}
	return nil
}

// store writes the account's calls to the state file.
func (c *Counter) store(account string, ts []time.Time) error {
	if c.db == nil {
		return nil
	}
	v := make([]byte, 0, 8*len(ts))
	for _, t := range ts {
		v = binary.BigEndian.AppendUint64(v, uint64(t.Unix()))
	}
	return c.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return err
		}
		return b.Put([]byte(account), v)
	})
}

// prune keeps the calls of the day before now.
func prune(ts []time.Time, now time.Time) []time.Time {
	out := ts[:0:0]
	for _, t := range ts {
		if now.Sub(t) < 24*time.Hour {
			out = append(out, t)
		}
	}
	return out
}
