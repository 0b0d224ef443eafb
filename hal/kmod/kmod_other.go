//go:build !linux

package kmod

func load(path, params string) error { return ErrUnsupported }
