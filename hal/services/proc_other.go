//go:build !linux

package services

// FindProcesses returns ErrUnsupported: there is no /proc to search.
func FindProcesses(names []string) ([]Process, error) { return nil, ErrUnsupported }
