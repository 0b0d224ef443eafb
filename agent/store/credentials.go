package store

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/hardphone/hardphone/crypto/credstore"
)

// Credentials is the credential store of a state directory, opened with
// everything under it. Close closes all of it.
type Credentials struct {
	*credstore.Store
	state     *Store
	protector *credstore.Protector
}

// OpenCredentials opens dir/state.db, the protector tpmSpec names
// ("/dev/tpmrm0", "swtpm:unix:PATH", "swtpm:tcp:HOST:PORT" or
// "software:KEKFILE") and the credential store in it: what the SIP layer
// needs for
//
//	creds, err := store.OpenCredentials(stateDir, tpmSpec, log)
//	cert, err := creds.Identity()     // tls.Certificate with the TPM key
//	pw, err := creds.Get("sip/alice")
//
// log may be nil (discard).
func OpenCredentials(dir, tpmSpec string, log *slog.Logger, opts ...credstore.TPMOption) (*Credentials, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := Open(dir, WithLogger(log))
	if err != nil {
		return nil, err
	}
	p, err := credstore.OpenProtector(tpmSpec, opts...)
	if err != nil {
		// The state file was only opened; its close error adds nothing.
		_ = st.Close()
		return nil, err
	}
	cs, err := credstore.Open(st.DB(), p, credstore.WithLogger(log))
	if err != nil {
		err = errors.Join(err, p.Close(), st.Close())
		return nil, err
	}
	return &Credentials{Store: cs, state: st, protector: p}, nil
}

// State returns the open state file, for other owners of a bucket in it.
func (c *Credentials) State() *Store { return c.state }

// Protector returns the protector, for Wipe.
func (c *Credentials) Protector() *credstore.Protector { return c.protector }

// Close closes the credential store, the protector (the TPM) and the state
// file, in that order.
func (c *Credentials) Close() error {
	if err := errors.Join(c.Store.Close(), c.protector.Close(), c.state.Close()); err != nil {
		return fmt.Errorf("close credentials: %w", err)
	}
	return nil
}
