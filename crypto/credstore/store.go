package credstore

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The store owns one top-level bucket of the state file, with three nested
// buckets: meta (the two KEK record copies), values (credential records by
// name) and identity (records "key" and "cert").
var (
	bucketTop      = []byte("credstore")
	bucketMeta     = []byte("meta")
	bucketValues   = []byte("values")
	bucketIdentity = []byte("identity")
)

// Bucket names as bound into each record's associated data.
const (
	adValues   = "values"
	adIdentity = "identity"
)

// Store is an open credential store. It is safe for concurrent use.
type Store struct {
	db  *bolt.DB
	p   *Protector
	log *slog.Logger
	now func() time.Time

	// mu guards rec, keys and closed. Lock order: mu, then idMu.
	mu     sync.RWMutex
	rec    *kekRecord // the KEK record in use; never nil after Open
	keys   *keys      // cached store keys; nil with a PCR policy, which unseals per operation
	closed bool

	// idMu guards id.
	idMu sync.Mutex
	id   *loadedIdentity // nil until an identity operation loads the key
}

type options struct {
	log *slog.Logger
	now func() time.Time
}

// Option configures Open.
type Option func(*options) error

// WithLogger sets the logger; the default discards. The store adds
// component=credstore and never logs a value.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// WithClock sets the clock for record timestamps; the default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

// Open opens the credential store in db, creating its KEK on first use.
// Opening unseals the KEK (a wrong TPM, a changed PCR or a wiped store each
// fail here with their own error), repairs a damaged copy of the KEK record
// from the good one, and reseals the KEK when the protector was given
// another PCR set (WithPCRs). Close the store before the protector and db.
func Open(db *bolt.DB, p *Protector, opts ...Option) (*Store, error) {
	if db == nil || p == nil {
		return nil, errors.New("open credential store: nil db or protector")
	}
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("open credential store: %w", err)
		}
	}
	s := &Store{db: db, p: p, log: o.log.With("component", "credstore"), now: o.now}
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("open credential store: %w", err)
	}
	s.log.Info("credential store open", "protection", s.rec.protection, "weaker", s.rec.protection.Weaker(),
		"pcrs", s.rec.pcrs, "generation", s.rec.generation)
	return s, nil
}

func (s *Store) open() error {
	var (
		raw      [2][]byte
		hasData  bool
		complete bool // every bucket exists
	)
	// Read first: a refused Open must not write even a transaction.
	err := s.db.View(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketTop)
		if top == nil {
			return nil
		}
		complete = true
		for _, name := range [][]byte{bucketValues, bucketIdentity, bucketSealed} {
			b := top.Bucket(name)
			if b == nil {
				complete = false
				continue
			}
			if k, _ := b.Cursor().First(); k != nil {
				hasData = true
			}
		}
		meta := top.Bucket(bucketMeta)
		if meta == nil {
			complete = false
			return nil
		}
		for i, k := range kekKeys {
			raw[i] = bytes.Clone(meta.Get(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !complete {
		if err := s.db.Update(func(tx *bolt.Tx) error {
			top, err := tx.CreateBucketIfNotExists(bucketTop)
			if err != nil {
				return err
			}
			for _, name := range [][]byte{bucketMeta, bucketValues, bucketIdentity, bucketSealed} {
				if _, err := top.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if raw[0] == nil && raw[1] == nil {
		if hasData {
			return corrupt("KEK record", errors.New("both copies are missing but records remain: the values are unreadable; wipe the store"))
		}
		return s.create()
	}
	return s.unlock(raw)
}

// create makes a new KEK, seals it, checks that it unseals, and only then
// writes the record.
func (s *Store) create() error {
	kek := make([]byte, kekLen)
	if _, err := rand.Read(kek); err != nil {
		return fmt.Errorf("KEK: %w", err)
	}
	defer clear(kek)
	pcrs, _ := s.p.impl.pcrs()
	rec, err := s.p.impl.seal(bytes.Clone(kek), pcrs)
	if err != nil {
		return err
	}
	k, err := s.verifySeal(rec, kek)
	if err == nil {
		err = s.writeKEK(rec.marshal(), 0, 1)
	}
	if err != nil {
		// Nothing refers to the new KEK yet; a failure to destroy it
		// leaves nothing that could be read.
		_ = s.p.impl.destroy(rec)
		return err
	}
	s.setKEK(rec, k)
	s.log.Info("KEK created", "protection", rec.protection, "pcrs", rec.pcrs, "generation", rec.generation)
	return nil
}

// verifySeal unseals a record just sealed, so a policy that cannot be
// satisfied is found before anything is encrypted under it, and fills in
// its check value.
func (s *Store) verifySeal(rec *kekRecord, kek []byte) (*keys, error) {
	got, err := s.p.impl.unseal(rec)
	if err != nil {
		return nil, fmt.Errorf("verify new KEK seal: %w", err)
	}
	same := bytes.Equal(got, kek)
	clear(got)
	if !same {
		return nil, errors.New("verify new KEK seal: unsealed KEK differs from the one sealed")
	}
	k, err := deriveKeys(bytes.Clone(kek))
	if err != nil {
		return nil, err
	}
	rec.check = k.check
	return k, nil
}

// unlock unseals the first sound KEK record copy, repairs the other if it
// differs, and reseals when the PCR set changed.
func (s *Store) unlock(raw [2][]byte) error {
	var (
		errs    [2]error
		rec     *kekRecord
		goodRaw []byte
		kek     []byte
		k       *keys
	)
	for i := range raw {
		if rec != nil {
			errs[i] = s.copyProblem(raw[i], goodRaw)
			continue
		}
		r, kk, key, err := s.tryCopy(i, raw[i])
		if err != nil {
			errs[i] = err
			continue
		}
		rec, goodRaw, kek, k = r, raw[i], kk, key
	}
	if rec == nil {
		best, other := errs[0], errs[1]
		if errorRank(other) > errorRank(best) {
			best, other = other, best
		}
		if best.Error() == other.Error() {
			return best
		}
		return fmt.Errorf("%w (other KEK record copy: %v)", best, other)
	}
	defer clear(kek)
	for i := range raw {
		if errs[i] == nil {
			continue
		}
		if err := s.writeKEK(goodRaw, i); err != nil {
			return fmt.Errorf("repair KEK record copy %d: %w", i, err)
		}
		s.log.Warn("KEK record copy damaged, repaired from the good copy", "copy", i, "reason", errs[i].Error())
	}
	if want, given := s.p.impl.pcrs(); given && rec.protection == ProtectionTPM && !slices.Equal(want, rec.pcrs) {
		return s.reseal(rec, want, kek, k)
	}
	s.setKEK(rec, k)
	return nil
}

// tryCopy parses KEK record copy i, unseals it and checks the KEK against
// the record's check value.
func (s *Store) tryCopy(i int, raw []byte) (*kekRecord, []byte, *keys, error) {
	if raw == nil {
		return nil, nil, nil, corrupt(fmt.Sprintf("KEK record copy %d", i), errors.New("missing"))
	}
	rec, err := parseKEKRecord(raw)
	if err != nil {
		return nil, nil, nil, corrupt(fmt.Sprintf("KEK record copy %d", i), err)
	}
	kek, err := s.p.impl.unseal(rec)
	if err != nil {
		return nil, nil, nil, err
	}
	k, err := deriveKeys(bytes.Clone(kek))
	if err == nil {
		err = k.verify(rec)
	}
	if err != nil {
		clear(kek)
		if rec.protection == ProtectionSoftware {
			return nil, nil, nil, fmt.Errorf("%w: the KEK file does not belong to this store", ErrWrongProtector)
		}
		return nil, nil, nil, corrupt(fmt.Sprintf("KEK record copy %d", i), err)
	}
	return rec, kek, k, nil
}

// copyProblem says what is wrong with a KEK record copy that is not the
// good one; nil when it is identical.
func (s *Store) copyProblem(raw, good []byte) error {
	switch {
	case bytes.Equal(raw, good):
		return nil
	case raw == nil:
		return errors.New("missing")
	}
	if _, err := parseKEKRecord(raw); err != nil {
		return err
	}
	return errors.New("differs from the good copy")
}

// reseal binds the same KEK to pcrs, verified before it replaces the old
// record.
func (s *Store) reseal(old *kekRecord, pcrs []int, kek []byte, k *keys) error {
	rec, err := s.p.impl.seal(bytes.Clone(kek), pcrs)
	if err != nil {
		return fmt.Errorf("reseal KEK: %w", err)
	}
	if _, err := s.verifySeal(rec, kek); err != nil {
		return fmt.Errorf("reseal KEK: %w", err)
	}
	if err := s.writeKEK(rec.marshal(), 0, 1); err != nil {
		return fmt.Errorf("reseal KEK: %w", err)
	}
	s.log.Info("KEK resealed to a new PCR set", "from", old.pcrs, "to", rec.pcrs)
	s.setKEK(rec, k)
	return nil
}

func (s *Store) setKEK(rec *kekRecord, k *keys) {
	s.rec = rec
	if len(rec.pcrs) == 0 {
		s.keys = k
	}
}

// writeKEK stores b as the given record copies in one transaction.
func (s *Store) writeKEK(b []byte, copies ...int) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := metaBucket(tx)
		if err != nil {
			return err
		}
		for _, i := range copies {
			if err := meta.Put(kekKeys[i], b); err != nil {
				return err
			}
		}
		return nil
	})
}

func metaBucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	return nested(tx, bucketMeta)
}

func nested(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	top := tx.Bucket(bucketTop)
	if top == nil {
		return nil, fmt.Errorf("bucket %s missing", bucketTop)
	}
	b := top.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("bucket %s/%s missing", bucketTop, name)
	}
	return b, nil
}

// currentKeysLocked returns the store keys: the cached ones, or, with a
// PCR policy, freshly unsealed ones, so a PCR extended since Open refuses
// the operation. Callers hold mu (read).
func (s *Store) currentKeysLocked() (*keys, error) {
	if s.closed {
		return nil, errClosed
	}
	if s.keys != nil {
		return s.keys, nil
	}
	kek, err := s.p.impl.unseal(s.rec)
	if err != nil {
		return nil, err
	}
	k, err := deriveKeys(kek)
	if err != nil {
		return nil, err
	}
	if err := k.verify(s.rec); err != nil {
		return nil, corrupt("KEK record", err)
	}
	return k, nil
}

// Protection returns what guards this store's KEK; `status` reports
// ProtectionSoftware as weaker.
func (s *Store) Protection() Protection {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rec.protection
}

// Status summarizes the store for `status` and `creds status`.
type Status struct {
	Protection Protection
	// PCRs the KEK is bound to (SHA-256 bank); empty for none.
	PCRs []int
	// Generation is the value of the TPM counter the KEK is sealed to (0
	// for the software protector); GenerationCounter its NV index.
	Generation        uint64
	GenerationCounter uint32
	Credentials       int
	Identity          bool
	Certificate       bool
}

// Status reports how the store is protected and what it holds, without
// unsealing anything.
func (s *Store) Status() (Status, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Status{}, errClosed
	}
	st := Status{Protection: s.rec.protection, PCRs: slices.Clone(s.rec.pcrs), Generation: s.rec.generation, GenerationCounter: s.rec.counterIndex}
	err := s.db.View(func(tx *bolt.Tx) error {
		vals, err := nested(tx, bucketValues)
		if err != nil {
			return err
		}
		st.Credentials = vals.Stats().KeyN
		id, err := nested(tx, bucketIdentity)
		if err != nil {
			return err
		}
		st.Identity = id.Get([]byte(idKey)) != nil
		st.Certificate = id.Get([]byte(idCert)) != nil
		return nil
	})
	if err != nil {
		return Status{}, fmt.Errorf("credential store status: %w", err)
	}
	return st, nil
}

// LogValue describes the store without any secret.
func (s *Store) LogValue() slog.Value {
	return slog.GroupValue(slog.String("protection", s.Protection().String()), slog.String("keys", redacted))
}

// Close forgets the keys and unloads the identity key. It does not close
// the Protector or the db.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.keys = nil
	s.idMu.Lock()
	defer s.idMu.Unlock()
	return s.dropIdentityLocked()
}
