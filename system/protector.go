package system

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/hal/tpm"
)

// errTPMOptionsSoftware: PCR binding and counters need a TPM.
var errTPMOptionsSoftware = errors.New("TPM options (PCRs, generation counter) need a TPM protector")

// OpenProtector opens the key protector a credential_store spec names:
//
//	/dev/tpmrm0, swtpm:unix:PATH, swtpm:tcp:HOST:PORT   a TPM (hal/tpm.Open)
//	software:PATH                                      a KEK file (weaker)
//
// TPM options are refused with the software protector. The protector owns
// what it opened: its Close releases the TPM.
func OpenProtector(spec string, opts ...credstore.TPMOption) (*credstore.Protector, error) {
	if path, ok := strings.CutPrefix(spec, "software:"); ok {
		if len(opts) > 0 {
			return nil, fmt.Errorf("open protector %q: %w", spec, errTPMOptionsSoftware)
		}
		return credstore.NewSoftwareProtector(path)
	}
	t, err := tpm.Open(spec)
	if err != nil {
		return nil, fmt.Errorf("open protector: %w", err)
	}
	p, err := credstore.NewTPMProtector(t, append(opts, credstore.OwnTPM())...)
	if err != nil {
		// The options were bad; the TPM was never used.
		return nil, errors.Join(err, t.Close())
	}
	return p, nil
}
