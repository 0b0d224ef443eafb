package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hardphone/hardphone/fleet/store"
)

// Setting implements store.Store.
func (s *Store) Setting(ctx context.Context, key store.SettingKey) (string, error) {
	if err := key.Validate(); err != nil {
		return "", fmt.Errorf("get setting: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return "", err
	}
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM hpfleet.settings WHERE key = $1`, string(key)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("get setting %s: %w", key, err)
	}
	return v, nil
}

// SetSetting implements store.Store.
func (s *Store) SetSetting(ctx context.Context, key store.SettingKey, value string) error {
	if err := store.ValidateSetting(key, value); err != nil {
		return fmt.Errorf("set setting: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO hpfleet.settings (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()`, string(key), value)
	if err != nil {
		return fmt.Errorf("set setting %s: %w", key, err)
	}
	return nil
}

// DeleteSetting implements store.Store.
func (s *Store) DeleteSetting(ctx context.Context, key store.SettingKey) error {
	if err := key.Validate(); err != nil {
		return fmt.Errorf("delete setting: %w", err)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM hpfleet.settings WHERE key = $1`, string(key))
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete setting %s: %w", key, err)
	}
	return nil
}
