//go:build !linux

package resident

// ReleaseCode returns ErrUnsupported off Linux.
func ReleaseCode(dropCache bool) (Released, error) { return Released{}, ErrUnsupported }

// Faults returns ErrUnsupported off Linux.
func Faults() (int64, error) { return 0, ErrUnsupported }
