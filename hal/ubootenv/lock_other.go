//go:build !linux

package ubootenv

// flock is only implemented on Linux; a config without LockFile works
// everywhere.
func flock(string) (func(), error) { return nil, ErrUnsupported }
