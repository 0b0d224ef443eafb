package ubootenv

import (
	"os"
	"syscall"
)

// flock takes an exclusive flock(2) on path, creating it if needed, the way
// libubootenv's libuboot_lock does, and returns the release function.
func flock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		// Closing the descriptor drops the lock; an error here leaves
		// nothing to undo.
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
