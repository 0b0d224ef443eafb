package adminauth

import (
	"context"
	"testing"

	"golang.org/x/crypto/argon2"
)

// BenchmarkPasswordCheck measures a login's password check under
// DefaultParams (/ours: parse, semaphore, derive, compare) beside the raw
// argon2.IDKey call of the same cost (/reference).
func BenchmarkPasswordCheck(b *testing.B) {
	h, err := NewHasher(DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := h.Hash(context.Background(), "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if ok, _, err := h.Check(context.Background(), enc, "correct horse battery staple"); !ok || err != nil {
				b.Fatalf("Check = %v, %v", ok, err)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		salt := make([]byte, DefaultParams.SaltLen)
		for i := 0; i < b.N; i++ {
			argon2.IDKey([]byte("correct horse battery staple"), salt, DefaultParams.Time, DefaultParams.Memory, DefaultParams.Threads, DefaultParams.KeyLen)
		}
	})
}
