package storetest

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

func storedChallenge(c store.Challenge) store.Challenge {
	c.CreatedAt, c.ExpiresAt = norm(c.CreatedAt), norm(c.ExpiresAt)
	return c
}

func testChallenges(t *testing.T, b Backend) {
	s := open(t, b)
	allow(t, s, 0, 1)

	c := challenge(t, 0, t0)
	noErr(t, "PutChallenge", s.PutChallenge(ctx, c))
	got, err := s.ConsumeChallenge(ctx, c.ID, at(30*time.Second))
	noErr(t, "ConsumeChallenge", err)
	equal(t, "ConsumeChallenge", got, storedChallenge(c))
	// Replay: the second answer to the same round finds nothing.
	_, err = s.ConsumeChallenge(ctx, c.ID, at(31*time.Second))
	wantErr(t, "ConsumeChallenge(again)", err, store.ErrNotFound)

	// Expired: consumed with ErrExpired, then gone. ExpiresAt itself is
	// already too late.
	c = challenge(t, 0, t0)
	noErr(t, "PutChallenge", s.PutChallenge(ctx, c))
	got, err = s.ConsumeChallenge(ctx, c.ID, c.ExpiresAt)
	wantErr(t, "ConsumeChallenge(at expiry)", err, store.ErrExpired)
	equal(t, "ConsumeChallenge(at expiry) record", got.ID, c.ID)
	_, err = s.ConsumeChallenge(ctx, c.ID, t0)
	wantErr(t, "ConsumeChallenge(expired, again)", err, store.ErrNotFound)

	// At most MaxChallengesPerEK outstanding per TPM; expired ones make
	// room, other TPMs are not affected.
	var live []store.Challenge
	for i := 0; i < store.MaxChallengesPerEK; i++ {
		c := challenge(t, 0, at(time.Duration(i)*time.Second))
		noErr(t, fmt.Sprintf("PutChallenge(%d)", i), s.PutChallenge(ctx, c))
		live = append(live, c)
	}
	over := challenge(t, 0, at(10*time.Second))
	wantErr(t, "PutChallenge(over the limit)", s.PutChallenge(ctx, over), store.ErrLimit)
	noErr(t, "PutChallenge(other TPM)", s.PutChallenge(ctx, challenge(t, 1, at(10*time.Second))))
	// Created after the first one expired (it lives one minute): it makes
	// room by dropping that one.
	later := challenge(t, 0, live[0].ExpiresAt)
	noErr(t, "PutChallenge(after one expired)", s.PutChallenge(ctx, later))
	_, err = s.ConsumeChallenge(ctx, live[0].ID, t0)
	wantErr(t, "ConsumeChallenge(dropped expired)", err, store.ErrNotFound)
	got, err = s.ConsumeChallenge(ctx, live[1].ID, at(20*time.Second))
	noErr(t, "ConsumeChallenge(still live)", err)
	equal(t, "ConsumeChallenge(still live)", got, storedChallenge(live[1]))

	// Purge: live[2], live[3] expire at t0+62s, t0+63s; later at t0+2m;
	// the other TPM's at t0+70s.
	n, err := s.PurgeChallenges(ctx, at(65*time.Second))
	noErr(t, "PurgeChallenges", err)
	equal(t, "PurgeChallenges(t0+65s)", n, 2)
	n, err = s.PurgeChallenges(ctx, at(65*time.Second))
	noErr(t, "PurgeChallenges(again)", err)
	equal(t, "PurgeChallenges(again)", n, 0)
	_, err = s.ConsumeChallenge(ctx, live[2].ID, t0)
	wantErr(t, "ConsumeChallenge(purged)", err, store.ErrNotFound)
	got, err = s.ConsumeChallenge(ctx, later.ID, at(65*time.Second))
	noErr(t, "ConsumeChallenge(not purged)", err)
	equal(t, "ConsumeChallenge(not purged)", got, storedChallenge(later))

	// Removing a TPM from the allow-list ends its rounds.
	c = challenge(t, 1, t0)
	noErr(t, "PutChallenge", s.PutChallenge(ctx, c))
	noErr(t, "RemoveAllowed", s.RemoveAllowed(ctx, ek(1)))
	_, err = s.ConsumeChallenge(ctx, c.ID, t0)
	wantErr(t, "ConsumeChallenge(TPM removed)", err, store.ErrNotFound)
}

func testChallengeRefusals(t *testing.T, b Backend) {
	s := open(t, b)
	allow(t, s, 0)
	existing := challenge(t, 0, t0)
	noErr(t, "PutChallenge", s.PutChallenge(ctx, existing))

	mod := func(f func(*store.Challenge)) store.Challenge {
		c := challenge(t, 0, t0)
		f(&c)
		return c
	}
	tests := []struct {
		name string
		c    store.Challenge
		want error
	}{
		{"zero ID", mod(func(c *store.Challenge) { c.ID = store.ChallengeID{} }), store.ErrInvalid},
		{"zero EK", mod(func(c *store.Challenge) { c.EK = store.EKHash{} }), store.ErrInvalid},
		{"short AK name", mod(func(c *store.Challenge) { c.AKName = []byte{0, 0x0b} }), store.ErrInvalid},
		{"long AK name", mod(func(c *store.Challenge) { c.AKName = make([]byte, store.MaxAKNameLen+1) }), store.ErrInvalid},
		{"no public key", mod(func(c *store.Challenge) { c.IdentityPublicKey = nil }), store.ErrInvalid},
		{"garbage public key", mod(func(c *store.Challenge) { c.IdentityPublicKey = []byte("not DER") }), store.ErrInvalid},
		{"huge public key", mod(func(c *store.Challenge) { c.IdentityPublicKey = make([]byte, store.MaxPublicKeyLen+1) }), store.ErrInvalid},
		{"zero secret hash", mod(func(c *store.Challenge) { c.SecretHash = [32]byte{} }), store.ErrInvalid},
		{"expires before created", mod(func(c *store.Challenge) { c.ExpiresAt = c.CreatedAt }), store.ErrInvalid},
		{"lives too long", mod(func(c *store.Challenge) { c.ExpiresAt = c.CreatedAt.Add(store.MaxChallengeLifetime + time.Second) }), store.ErrInvalid},
		{"zero time", mod(func(c *store.Challenge) { c.CreatedAt = time.Time{} }), store.ErrInvalid},
		{"not on the allow-list", mod(func(c *store.Challenge) { c.EK = ek(5) }), store.ErrNotAllowed},
		{"duplicate ID", mod(func(c *store.Challenge) { c.ID = existing.ID; c.SecretHash[0] ^= 1 }), store.ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, "PutChallenge("+tt.name+")", s.PutChallenge(ctx, tt.c), tt.want)
		})
	}
	// None of them was stored, and the first challenge is intact.
	got, err := s.ConsumeChallenge(ctx, existing.ID, t0)
	noErr(t, "ConsumeChallenge(existing)", err)
	equal(t, "ConsumeChallenge(existing)", got, storedChallenge(existing))
	for _, tt := range tests {
		if _, err := s.ConsumeChallenge(ctx, tt.c.ID, t0); err == nil && tt.c.ID != existing.ID {
			t.Fatalf("refused challenge %q was stored", tt.name)
		}
	}
	_, err = s.ConsumeChallenge(ctx, store.NewChallengeID(), time.Time{})
	wantErr(t, "ConsumeChallenge(zero now)", err, store.ErrInvalid)
	_, err = s.PurgeChallenges(ctx, time.Time{})
	wantErr(t, "PurgeChallenges(zero now)", err, store.ErrInvalid)
}

// testChallengeLogValue checks the secret hash never reaches a log.
func testChallengeLogValue(t *testing.T, _ Backend) {
	c := challenge(t, 0, t0)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("challenge", "c", c)
	out := buf.String()
	if !strings.Contains(out, "REDACTED") || !strings.Contains(out, c.ID.String()) {
		t.Fatalf("log of a challenge = %q, want its ID and REDACTED", out)
	}
	for _, leak := range []string{fmt.Sprintf("%x", c.SecretHash[:]), fmt.Sprint(c.SecretHash[:4])} {
		if strings.Contains(out, leak) {
			t.Fatalf("log of a challenge = %q, holds the secret hash", out)
		}
	}
}
