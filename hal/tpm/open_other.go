//go:build !linux

package tpm

import (
	"fmt"

	"github.com/google/go-tpm/tpm2/transport"
)

// openDevice reports that TPM character devices are a Linux thing; swtpm
// sockets still work.
func openDevice(path string) (transport.TPMCloser, error) {
	return nil, fmt.Errorf("open TPM device %s: %w", path, ErrUnsupported)
}
