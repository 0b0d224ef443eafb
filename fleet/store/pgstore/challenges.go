package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hardphone/hardphone/fleet/store"
)

// PutChallenge implements store.Store. The TPM's allow-list row is locked
// first, so replicas creating challenges for one TPM take turns and the
// per-TPM bound holds exactly.
func (s *Store) PutChallenge(ctx context.Context, c store.Challenge) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("put challenge: %w", err)
	}
	c.CreatedAt, c.ExpiresAt = store.NormTime(c.CreatedAt), store.NormTime(c.ExpiresAt)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM hpfleet.allowlist WHERE ek_hash = $1 FOR NO KEY UPDATE`, c.EK[:]).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: EK %s", store.ErrNotAllowed, c.EK)
		}
		if err != nil {
			return err
		}
		var live int
		err = tx.QueryRow(ctx, `WITH gone AS (
				DELETE FROM hpfleet.challenges WHERE ek_hash = $1 AND expires_at <= $2
			)
			SELECT count(*) FROM hpfleet.challenges WHERE ek_hash = $1 AND expires_at > $2`,
			c.EK[:], c.CreatedAt).Scan(&live)
		if err != nil {
			return err
		}
		if live >= store.MaxChallengesPerEK {
			return fmt.Errorf("%w: EK %s has %d challenges outstanding", store.ErrLimit, c.EK, live)
		}
		_, err = tx.Exec(ctx, `INSERT INTO hpfleet.challenges
			(id, ek_hash, ak_name, identity_public_key, secret_hash, created_at, expires_at,
			 sealing_public_key, sealing_secret_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			c.ID[:], c.EK[:], c.AKName, c.IdentityPublicKey, c.SecretHash[:], c.CreatedAt, c.ExpiresAt,
			c.SealingPublicKey, sealingHash(c))
		return err
	})
	if err != nil {
		return fmt.Errorf("put challenge %s: %w", c.ID, classify(err))
	}
	return nil
}

// sealingHash is the column value of a challenge's sealing secret hash:
// NULL without a sealing key.
func sealingHash(c store.Challenge) []byte {
	if c.SealingPublicKey == nil {
		return nil
	}
	return c.SealingSecretHash[:]
}

// ConsumeChallenge implements store.Store: one DELETE ... RETURNING. Of
// concurrent deleters of the row, one deletes it; the others wait for its
// row lock, then find it gone and return no row.
func (s *Store) ConsumeChallenge(ctx context.Context, id store.ChallengeID, now time.Time) (store.Challenge, error) {
	if err := store.CheckTime("now", now); err != nil {
		return store.Challenge{}, fmt.Errorf("consume challenge %s: %w", id, err)
	}
	if err := ctxErr(ctx); err != nil {
		return store.Challenge{}, err
	}
	c := store.Challenge{ID: id}
	var ek, secret, sealSecret []byte
	err := s.pool.QueryRow(ctx, `DELETE FROM hpfleet.challenges WHERE id = $1
		RETURNING ek_hash, ak_name, identity_public_key, secret_hash, created_at, expires_at,
			sealing_public_key, sealing_secret_hash`, id[:]).
		Scan(&ek, &c.AKName, &c.IdentityPublicKey, &secret, &c.CreatedAt, &c.ExpiresAt, &c.SealingPublicKey, &sealSecret)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Challenge{}, fmt.Errorf("consume challenge %s: %w", id, err)
	}
	if len(ek) != len(c.EK) || len(secret) != len(c.SecretHash) {
		return store.Challenge{}, fmt.Errorf("consume challenge %s: stored hashes of %d and %d bytes", id, len(ek), len(secret))
	}
	copy(c.EK[:], ek)
	copy(c.SecretHash[:], secret)
	if c.SealingPublicKey != nil {
		if len(sealSecret) != len(c.SealingSecretHash) {
			return store.Challenge{}, fmt.Errorf("consume challenge %s: stored sealing secret hash of %d bytes", id, len(sealSecret))
		}
		copy(c.SealingSecretHash[:], sealSecret)
	}
	c.CreatedAt, c.ExpiresAt = c.CreatedAt.UTC(), c.ExpiresAt.UTC()
	if !c.ExpiresAt.After(store.NormTime(now)) {
		return c, fmt.Errorf("consume challenge %s: %w at %v", id, store.ErrExpired, c.ExpiresAt)
	}
	return c, nil
}

// PurgeChallenges implements store.Store.
func (s *Store) PurgeChallenges(ctx context.Context, now time.Time) (int, error) {
	if err := store.CheckTime("now", now); err != nil {
		return 0, fmt.Errorf("purge challenges: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM hpfleet.challenges WHERE expires_at <= $1`, store.NormTime(now))
	if err != nil {
		return 0, fmt.Errorf("purge challenges: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
