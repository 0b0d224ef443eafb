package tpm

import (
	"fmt"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// openDevice opens a TPM character device: /dev/tpmrm0 (the kernel's
// resource manager, the default on a phone) or /dev/tpm0.
func openDevice(path string) (transport.TPMCloser, error) {
	tr, err := linuxtpm.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open TPM device %s: %w", path, err)
	}
	return tr, nil
}
