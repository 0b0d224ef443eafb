package adminauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// A password hash is the PHC string format of argon2id (RFC 9106 §3.1,
// version 0x13 = 19):
//
//	$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>
//
// salt and hash in standard base64 without padding.

// Params are argon2id's cost parameters.
type Params struct {
	// Memory in KiB.
	Memory uint32
	// Time is the number of passes.
	Time uint32
	// Threads is the degree of parallelism (lanes).
	Threads uint8
	// SaltLen and KeyLen in bytes.
	SaltLen, KeyLen uint32
}

// DefaultParams are sized for the fleet server's 2-core machine: RFC 9106
// §4's second recommended option (64 MiB, 3 passes) with 2 lanes, one per
// core: about 0.1-0.2 s per hash there (bench_test.go measures it beside
// the raw argon2 call). With MaxConcurrentHashes at 2, password checks
// hold at most 128 MiB at once.
var DefaultParams = Params{Memory: 64 << 10, Time: 3, Threads: 2, SaltLen: 16, KeyLen: 32}

// Bounds on parameters read from a stored hash, so a hash written by an
// attacker with database access cannot make a login take gigabytes or
// minutes.
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	minMemory  = 8       // KiB: argon2's minimum is 8 per lane
	maxTime    = 16
	maxThreads = 16
	minSalt    = 8
	maxSalt    = 64
	minKey     = 16
	maxKey     = 64
	// MaxPasswordLen bounds a password in bytes; longer ones are refused
	// before hashing (argon2 would take them, the request body should not).
	MaxPasswordLen = 1024
	// MaxConcurrentHashes bounds the argon2 computations running at once;
	// maxHashWaiters bounds those waiting for a turn (beyond: ErrBusy).
	MaxConcurrentHashes = 2
	maxHashWaiters      = 64
)

func (p Params) check() error {
	switch {
	case p.Memory < minMemory*uint32(max(p.Threads, 1)) || p.Memory > maxMemory:
		return fmt.Errorf("argon2 memory %d KiB: want %d..%d: %w", p.Memory, minMemory*uint32(max(p.Threads, 1)), maxMemory, ErrInvalid)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2 passes %d: want 1..%d: %w", p.Time, maxTime, ErrInvalid)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("argon2 lanes %d: want 1..%d: %w", p.Threads, maxThreads, ErrInvalid)
	case p.SaltLen < minSalt || p.SaltLen > maxSalt:
		return fmt.Errorf("salt of %d bytes: want %d..%d: %w", p.SaltLen, minSalt, maxSalt, ErrInvalid)
	case p.KeyLen < minKey || p.KeyLen > maxKey:
		return fmt.Errorf("hash of %d bytes: want %d..%d: %w", p.KeyLen, minKey, maxKey, ErrInvalid)
	}
	return nil
}

var b64 = base64.RawStdEncoding

// encodeHash renders the PHC string.
func encodeHash(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// parseHash reads a PHC string, strictly: the one canonical spelling of
// each number, known fields in order, parameters within bounds.
func parseHash(s string) (p Params, salt, key []byte, err error) {
	bad := func(why string) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("password hash: %s: %w", why, ErrInvalid)
	}
	if len(s) > 512 {
		return bad("too long")
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return bad("not $argon2id$v=..$m=..,t=..,p=..$salt$hash")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("version " + parts[2])
	}
	ps := strings.Split(parts[3], ",")
	if len(ps) != 3 {
		return bad("parameters " + parts[3])
	}
	var nums [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(ps[i], name)
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || strconv.FormatUint(n, 10) != v {
			return bad("parameter " + ps[i])
		}
		nums[i] = n
	}
	if nums[2] > 255 {
		return bad("lanes " + ps[2])
	}
	// Strict refuses non-zero padding bits, but every base64 decoder
	// skips CR and LF: only the canonical form is a stored hash.
	if strings.ContainsAny(parts[4], "\r\n") || strings.ContainsAny(parts[5], "\r\n") {
		return bad("salt or hash not base64")
	}
	salt, err1 := b64.Strict().DecodeString(parts[4])
	key, err2 := b64.Strict().DecodeString(parts[5])
	if err1 != nil || err2 != nil {
		return bad("salt or hash not base64")
	}
	p = Params{Memory: uint32(nums[0]), Time: uint32(nums[1]), Threads: uint8(nums[2]),
		SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	if err := p.check(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("password hash: %w", err)
	}
	return p, salt, key, nil
}

// Hasher computes and checks password hashes, at most
// MaxConcurrentHashes at a time.
type Hasher struct {
	params Params
	slots  chan struct{} // capacity MaxConcurrentHashes
	queue  chan struct{} // capacity maxHashWaiters + MaxConcurrentHashes
	// dummy is a hash of a random password under params: unknown names
	// are checked against it, the same work as a real check.
	dummy string
}

// NewHasher returns a Hasher using p for new hashes.
func NewHasher(p Params) (*Hasher, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	h := &Hasher{params: p, slots: make(chan struct{}, MaxConcurrentHashes),
		queue: make(chan struct{}, maxHashWaiters+MaxConcurrentHashes)}
	pw := make([]byte, 32)
	rand.Read(pw) // crypto/rand.Read never fails
	d, err := h.Hash(context.Background(), string(pw))
	if err != nil {
		return nil, err
	}
	h.dummy = d
	return h, nil
}

func (h *Hasher) acquire(ctx context.Context) (release func(), err error) {
	select {
	case h.queue <- struct{}{}:
	default:
		return nil, ErrBusy
	}
	select {
	case h.slots <- struct{}{}:
		return func() { <-h.slots; <-h.queue }, nil
	case <-ctx.Done():
		<-h.queue
		return nil, ctx.Err()
	}
}

// Hash returns the PHC string of password under the Hasher's parameters
// with a fresh random salt.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if len(password) == 0 || len(password) > MaxPasswordLen {
		return "", fmt.Errorf("hash password: length %d, want 1..%d: %w", len(password), MaxPasswordLen, ErrInvalid)
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	defer release()
	salt := make([]byte, h.params.SaltLen)
	rand.Read(salt) // crypto/rand.Read never fails
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	return encodeHash(h.params, salt, key), nil
}

// Check reports whether password matches the PHC string encoded, in
// constant time over the derived key, and whether the hash should be
// recomputed under the current parameters. An empty encoded string (no
// such admin) is checked against a dummy hash: the same work, always
// false.
func (h *Hasher) Check(ctx context.Context, encoded, password string) (ok, rehash bool, err error) {
	known := encoded != ""
	if !known {
		encoded = h.dummy
	}
	p, salt, want, err := parseHash(encoded)
	if err != nil {
		return false, false, err
	}
	if len(password) > MaxPasswordLen {
		// Hash something of the same cost anyway: the answer must not
		// come faster than a real check's.
		password = ""
		known = false
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return false, false, fmt.Errorf("check password: %w", err)
	}
	defer release()
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	match := subtle.ConstantTimeCompare(got, want) == 1
	return match && known, known && p != h.params, nil
}

// Params are the parameters new hashes use.
func (h *Hasher) Params() Params { return h.params }
