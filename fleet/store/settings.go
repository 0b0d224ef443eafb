package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// MaxSettingValue bounds a setting's value: 1..MaxSettingValue bytes of
// printable ASCII.
const MaxSettingValue = MaxTextLen

// SettingKey names a fleet setting: 1..MaxNameLen bytes of [a-z0-9_.],
// starting with a letter.
type SettingKey string

// Settings the server knows.
const (
	// SettingMinSecurityVersion is the lowest firmware security version
	// (decimal) a device may renew its certificate with.
	SettingMinSecurityVersion SettingKey = "min_security_version"
)

// Validate checks the key's form.
func (k SettingKey) Validate() error {
	s := string(k)
	if s == "" || len(s) > MaxNameLen {
		return fmt.Errorf("%w: setting key of %d bytes, want 1..%d", ErrInvalid, len(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '.')) {
			return fmt.Errorf("%w: setting key %q: byte %d (0x%02x) not allowed", ErrInvalid, s, i, c)
		}
	}
	return nil
}

// ValidateSetting checks a key and value for SetSetting.
func ValidateSetting(k SettingKey, value string) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if value == "" {
		return fmt.Errorf("%w: setting %s: empty value (delete the setting instead)", ErrInvalid, k)
	}
	return checkText("setting "+string(k), value, MaxSettingValue)
}

// SettingReader is what the typed getters need.
type SettingReader interface {
	Setting(ctx context.Context, key SettingKey) (string, error)
}

// SettingUint reads a decimal setting; ok is false when it is not set.
func SettingUint(ctx context.Context, s SettingReader, key SettingKey) (v uint64, ok bool, err error) {
	str, err := s.Setting(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	v, err = strconv.ParseUint(str, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("setting %s: %w: %v", key, ErrInvalid, err)
	}
	return v, true, nil
}

// SettingUintString formats v for SetSetting, the form SettingUint reads.
func SettingUintString(v uint64) string { return strconv.FormatUint(v, 10) }
