package sysctl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// Get returns the normalised value of key.
func (f *FS) Get(key string) (string, error) {
	p, err := f.path(key)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, classify(err))
	}
	return Normalize(string(b)), nil
}

// Set writes value to key. The value must be one line.
func (f *FS) Set(key, value string) error {
	p, err := f.path(key)
	if err != nil {
		return err
	}
	if strings.ContainsAny(value, "\n\r\x00") || len(value) > 4096 {
		return fmt.Errorf("%w: %s: value must be one line of at most 4096 bytes", errBadValue, key)
	}
	// O_TRUNC is meaningless on procfs but needed for a staged root of
	// plain files; no O_CREATE: a missing parameter is an error, not a file.
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", key, classify(err))
	}
	if _, err := fh.WriteString(value + "\n"); err != nil {
		fh.Close()
		return fmt.Errorf("write %s = %q: %w", key, value, classify(err))
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("write %s = %q: %w", key, value, classify(err))
	}
	return nil
}

func classify(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w: %v", ErrReadOnly, err)
	}
	return err
}
