package boltstore

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/store"
)

// Setting implements store.Store.
func (s *Store) Setting(ctx context.Context, key store.SettingKey) (string, error) {
	if err := key.Validate(); err != nil {
		return "", fmt.Errorf("get setting: %w", err)
	}
	var v string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bSettings).Get([]byte(key))
		if b == nil {
			return store.ErrNotFound
		}
		v = string(b)
		return nil
	})
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
	err := s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bSettings).Put([]byte(key), []byte(value))
	})
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
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bSettings)
		if b.Get([]byte(key)) == nil {
			return store.ErrNotFound
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("delete setting %s: %w", key, err)
	}
	return nil
}
