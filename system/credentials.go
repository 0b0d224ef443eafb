package system

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/hardphone/hardphone/agent/store"
	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/crypto/timefloor"
	"github.com/hardphone/hardphone/hal/tpm"
)

// CredentialSpec says where a credential store lives and what protects it.
type CredentialSpec struct {
	// StateDir holds state.db.
	StateDir string
	// Protector is "/dev/tpmrm0", "swtpm:unix:PATH", "swtpm:tcp:HOST:PORT"
	// or "software:KEKFILE" (weaker, reported so).
	Protector string
	// PCRs binds the KEK to these PCRs (SHA-256 bank) on a TPM; nil keeps
	// the store's binding, an empty non-nil slice removes it.
	PCRs []int
}

// tpmOptions are the protector options the spec asks for.
func (s CredentialSpec) tpmOptions() []credstore.TPMOption {
	if s.PCRs == nil {
		return nil
	}
	return []credstore.TPMOption{credstore.WithPCRs(s.PCRs...)}
}

// DefaultTPM is the TPM device a phone's credential store uses.
const DefaultTPM = tpm.DefaultDevice

// ErrIdentityExists: an identity key exists and would be replaced.
var ErrIdentityExists = credstore.ErrExists

// Credentials is an open credential store with the state file and the
// protector under it. Close closes all three.
type Credentials struct {
	*credstore.Store
	state     *store.Store
	protector *credstore.Protector
}

// OpenCredentials opens the state file, the protector and the credential
// store in it. log may be nil (discard).
func OpenCredentials(spec CredentialSpec, log *slog.Logger) (*Credentials, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := store.Open(spec.StateDir, store.WithLogger(log))
	if err != nil {
		return nil, err
	}
	c, err := openCredentialsIn(st, spec, log)
	if err != nil {
		// The state file was only opened; its close error adds nothing.
		_ = st.Close()
		return nil, err
	}
	return c, nil
}

// openCredentialsIn opens the protector and the store in an open state
// file (which the caller keeps owning on error).
func openCredentialsIn(st *store.Store, spec CredentialSpec, log *slog.Logger) (*Credentials, error) {
	p, err := OpenProtector(spec.Protector, spec.tpmOptions()...)
	if err != nil {
		return nil, err
	}
	// Certificates imported into the store are checked against the time
	// floor, not a clock that may have been wound back.
	floor, err := timefloor.Open(st.DB(), BuildTime())
	if err != nil {
		return nil, errors.Join(err, p.Close())
	}
	cs, err := credstore.Open(st.DB(), p, credstore.WithLogger(log), credstore.WithClock(floor.Now))
	if err != nil {
		return nil, errors.Join(err, p.Close())
	}
	return &Credentials{Store: cs, state: st, protector: p}, nil
}

// State returns the open state file, for other owners of a bucket in it.
func (c *Credentials) State() *store.Store { return c.state }

// Protector returns the protector (for the floor counter and Wipe).
func (c *Credentials) Protector() *credstore.Protector { return c.protector }

// Close closes the credential store, the protector (the TPM) and the state
// file, in that order.
func (c *Credentials) Close() error {
	if err := errors.Join(c.Store.Close(), c.protector.Close(), c.state.Close()); err != nil {
		return fmt.Errorf("close credentials: %w", err)
	}
	return nil
}

// WipeCredentials destroys the store's KEK (and with it every value) even
// when the store itself would no longer open, and says what protected it.
func WipeCredentials(spec CredentialSpec, log *slog.Logger) (protection string, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := store.Open(spec.StateDir, store.WithLogger(log))
	if err != nil {
		return "", err
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	p, err := OpenProtector(spec.Protector, spec.tpmOptions()...)
	if err != nil {
		return "", err
	}
	defer func() { err = errors.Join(err, p.Close()) }()
	if err := credstore.Wipe(st.DB(), p); err != nil {
		return "", err
	}
	return p.Protection().String(), nil
}
