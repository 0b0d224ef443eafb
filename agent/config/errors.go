package config

import "fmt"

// KeyError names the config key that is wrong.
type KeyError struct {
	Key string // dotted path, e.g. account[0].digest_min
	Err error
}

func (e *KeyError) Error() string { return fmt.Sprintf("config key %s: %v", e.Key, e.Err) }
func (e *KeyError) Unwrap() error { return e.Err }

func keyErr(key string, format string, args ...any) error {
	return &KeyError{Key: key, Err: fmt.Errorf(format, args...)}
}
