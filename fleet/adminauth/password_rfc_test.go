package adminauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// Vectors of the Argon2 reference implementation (the PHC winner's
// test suite for Argon2id version 0x13, reproduced with its command-line
// tool, Debian's argon2): password, salt, passes, memory (KiB), lanes,
// and the PHC string with a 32-byte hash.
var referenceVectors = []struct {
	pw, salt string
	t, m     uint32
	p        uint8
	phc      string
}{
	{"password", "somesalt", 2, 1 << 16, 1, "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
	{"password", "somesalt", 2, 1 << 18, 1, "$argon2id$v=19$m=262144,t=2,p=1$c29tZXNhbHQ$eP4eyR+zqlZX1y5xCFTkw9m5GYx0L5YWwvCFvtlbLow"},
	{"password", "somesalt", 2, 1 << 8, 1, "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"},
	{"password", "somesalt", 2, 1 << 8, 2, "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc"},
	{"password", "somesalt", 1, 1 << 16, 1, "$argon2id$v=19$m=65536,t=1,p=1$c29tZXNhbHQ$9qWtwbpyPd3vm1rB1GThgPzZ3/ydHL92zKL+15XZypg"},
	{"password", "somesalt", 4, 1 << 16, 1, "$argon2id$v=19$m=65536,t=4,p=1$c29tZXNhbHQ$kCXUjmjvc5XMqQedpMTsOv+zyJEf5PhtGiUghW9jFyw"},
	{"differentpassword", "somesalt", 2, 1 << 16, 1, "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$C4TWUs9rDEvq7w3+J4umqA32aWKB1+DSiRuBfYxFj94"},
	{"password", "diffsalt", 2, 1 << 16, 1, "$argon2id$v=19$m=65536,t=2,p=1$ZGlmZnNhbHQ$vfMrBczELrFdWP0ZsfhWsRPaHppYdP3MVEMIVlqoFBw"},
}

// notApplicable lists vectors this package cannot run, with the reason.
var notApplicable = []struct{ vector, reason string }{
	{"RFC 9106 §5.3 (Argon2id, t=3, m=32 KiB, p=4, secret K and associated data X)",
		"golang.org/x/crypto/argon2 has no secret or associated-data input, and passwords here use neither; " +
			"the reference implementation's vectors without them stand in (referenceVectors)"},
}

func TestArgon2idReferenceVectors(t *testing.T) {
	for _, v := range notApplicable {
		t.Logf("not applicable: %s: %s", v.vector, v.reason)
	}
	h, err := NewHasher(Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range referenceVectors {
		t.Run(v.phc, func(t *testing.T) {
			key := argon2.IDKey([]byte(v.pw), []byte(v.salt), v.t, v.m, v.p, 32)
			got := encodeHash(Params{Memory: v.m, Time: v.t, Threads: v.p}, []byte(v.salt), key)
			if got != v.phc {
				t.Fatalf("encodeHash(IDKey(%s, %s, t=%d, m=%d, p=%d)) = %s, want %s", v.pw, v.salt, v.t, v.m, v.p, got, v.phc)
			}
			p, salt, k, err := parseHash(v.phc)
			if err != nil || string(salt) != v.salt || hex.EncodeToString(k) != hex.EncodeToString(key) || p.Time != v.t || p.Memory != v.m || p.Threads != v.p {
				t.Fatalf("parseHash(%s) = %+v, %q, %x, %v", v.phc, p, salt, k, err)
			}
			ok, rehash, err := h.Check(context.Background(), v.phc, v.pw)
			if err != nil || !ok || !rehash {
				t.Fatalf("Check(%s, %q) = %v, rehash %v, %v; want true, rehash (other parameters)", v.phc, v.pw, ok, rehash, err)
			}
			if ok, _, _ := h.Check(context.Background(), v.phc, v.pw+"x"); ok {
				t.Fatalf("Check(%s, wrong password) = true", v.phc)
			}
		})
	}
}

// TestArgon2idAgainstReferenceTool hashes random passwords and salts with
// our encoding and with the reference implementation's tool (Debian's
// argon2), and compares the PHC strings.
func TestArgon2idAgainstReferenceTool(t *testing.T) {
	bin, err := exec.LookPath("argon2")
	if err != nil {
		if ci := strings.EqualFold(getenv("CI"), "true"); ci {
			t.Fatalf("argon2 (Debian package argon2) not installed: %v", err)
		}
		t.Skipf("argon2 (Debian package argon2) not installed: %v", err)
	}
	for i := 0; i < 4; i++ {
		pw := make([]byte, 12)
		salt := make([]byte, 16)
		rand.Read(pw)
		rand.Read(salt)
		password, saltStr := hex.EncodeToString(pw), hex.EncodeToString(salt)[:16+i]
		p := Params{Memory: 1 << (8 + i), Time: uint32(1 + i), Threads: uint8(1 + i%2)}
		cmd := exec.Command(bin, saltStr, "-id", "-t", itoa(int(p.Time)), "-k", itoa(int(p.Memory)), "-p", itoa(int(p.Threads)), "-l", "32", "-e")
		cmd.Stdin = strings.NewReader(password)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("argon2: %v", err)
		}
		want := strings.TrimSpace(string(out))
		got := encodeHash(p, []byte(saltStr), argon2.IDKey([]byte(password), []byte(saltStr), p.Time, p.Memory, p.Threads, 32))
		if got != want {
			t.Fatalf("our hash %s, reference %s", got, want)
		}
	}
}

func TestParseHashRefusals(t *testing.T) {
	good := referenceVectors[2].phc
	for _, s := range []string{
		"",
		"$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		strings.Replace(good, "v=19", "v=16", 1),
		strings.Replace(good, "m=256", "m=0256", 1),
		strings.Replace(good, "m=256", "m=4194304", 1), // 4 GiB: over the bound
		strings.Replace(good, "t=2", "t=100", 1),
		strings.Replace(good, "p=1", "p=64", 1),
		strings.Replace(good, "m=256,t=2,p=1", "t=2,m=256,p=1", 1),
		strings.Replace(good, "c29tZXNhbHQ", "c29tZXNhbHQ=", 1), // padded
		strings.Replace(good, "c29tZXNhbHQ", "AAA", 1),          // salt too short
		good + "$",
		strings.Repeat("$", 600),
	} {
		if _, _, _, err := parseHash(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseHash(%q) error %v, want ErrInvalid", s, err)
		}
	}
}

func TestHasher(t *testing.T) {
	ctx := context.Background()
	h, err := NewHasher(Params{Memory: 256, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	a, err := h.Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := h.Hash(ctx, "pw")
	if a == b {
		t.Fatalf("two hashes of one password are equal (salt not random): %s", a)
	}
	if ok, rehash, err := h.Check(ctx, a, "pw"); !ok || rehash || err != nil {
		t.Fatalf("Check(own hash) = %v, %v, %v; want true, no rehash", ok, rehash, err)
	}
	if ok, _, err := h.Check(ctx, "", "anything"); ok || err != nil {
		t.Fatalf("Check(no hash) = %v, %v; want false (dummy work)", ok, err)
	}
	if ok, _, _ := h.Check(ctx, a, strings.Repeat("x", MaxPasswordLen+1)); ok {
		t.Fatalf("Check(overlong password) = true")
	}
	for _, pw := range []string{"", strings.Repeat("x", MaxPasswordLen+1)} {
		if _, err := h.Hash(ctx, pw); !errors.Is(err, ErrInvalid) {
			t.Errorf("Hash(%d bytes) error %v, want ErrInvalid", len(pw), err)
		}
	}
	if _, err := NewHasher(Params{Memory: 1 << 21, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewHasher(2 GiB) error %v, want ErrInvalid", err)
	}
	if err := DefaultParams.check(); err != nil {
		t.Errorf("DefaultParams: %v", err)
	}
}

// TestHasherBusy: beyond the waiting room, a hash is refused at once
// instead of queueing memory without bound.
func TestHasherBusy(t *testing.T) {
	h, err := NewHasher(Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < cap(h.queue); i++ {
		h.queue <- struct{}{}
	}
	if _, err := h.Hash(context.Background(), "pw"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Hash with the queue full: error %v, want ErrBusy", err)
	}
}
