package tpm

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// DefaultDevice is the TPM a phone opens: the kernel resource manager, which
// gives each open file its own view of transient objects and sessions.
const DefaultDevice = "/dev/tpmrm0"

// TPM is an open TPM. It is safe for concurrent use: one mutex serializes
// whole command sequences, because a sequence (load, start session, unseal,
// flush) must not interleave with another on a TPM without a resource
// manager (swtpm, /dev/tpm0), which has only three transient object slots.
type TPM struct {
	spec string

	// mu guards every field below and is held for a whole command sequence.
	mu     sync.Mutex
	tr     transport.TPMCloser
	srk    *object              // nil until first use, and after a TPM restart
	loaded map[*Signer]struct{} // signers whose key is loaded; Close flushes them
	closed bool
}

// object is a loaded TPM object.
type object struct {
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	public tpm2.TPMTPublic
}

// Open opens the TPM that spec names:
//
//	/dev/tpmrm0            a TPM character device (any absolute path)
//	swtpm:unix:PATH        swtpm's --server type=unixio socket
//	swtpm:tcp:HOST:PORT    swtpm's --server type=tcp socket
//
// Opening sends no command; the first operation does.
func Open(spec string) (*TPM, error) {
	var (
		tr  transport.TPMCloser
		err error
	)
	switch {
	case strings.HasPrefix(spec, "swtpm:unix:"):
		path := strings.TrimPrefix(spec, "swtpm:unix:")
		if path == "" {
			return nil, fmt.Errorf("%w %q: empty socket path", errBadSpec, spec)
		}
		tr = &streamTPM{network: "unix", addr: path}
	case strings.HasPrefix(spec, "swtpm:tcp:"):
		addr := strings.TrimPrefix(spec, "swtpm:tcp:")
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%w %q: %v", errBadSpec, spec, err)
		}
		tr = &streamTPM{network: "tcp", addr: addr}
	case strings.HasPrefix(spec, "/"):
		if tr, err = openDevice(spec); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w %q: want a device path, swtpm:unix:PATH or swtpm:tcp:HOST:PORT", errBadSpec, spec)
	}
	return &TPM{spec: spec, tr: tr, loaded: map[*Signer]struct{}{}}, nil
}

// Spec returns the spec the TPM was opened with.
func (t *TPM) Spec() string { return t.spec }

// Close flushes the objects this TPM loaded and closes the transport. It is
// idempotent.
func (t *TPM) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	for s := range t.loaded {
		errs = append(errs, s.flushLocked())
	}
	if t.srk != nil {
		errs = append(errs, t.flush(t.srk.handle))
		t.srk = nil
	}
	// A handle gone stale (the TPM restarted since) is already flushed.
	errs = slices.DeleteFunc(errs, func(err error) bool { return err != nil && staleHandle(err) })
	errs = append(errs, t.tr.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close TPM %s: %w", t.spec, err)
	}
	return nil
}

// do runs fn with the SRK loaded, holding the lock. When fn fails because a
// handle went stale (swtpm restarted, so every transient object is gone), it
// forgets what was loaded and runs fn once more: every fn is safe to repeat
// because the stale handle makes its first command fail.
func (t *TPM) do(op string, fn func(srk *object) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	for attempt := 0; ; attempt++ {
		srk, err := t.srkLocked()
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		err = fn(srk)
		if err == nil {
			return nil
		}
		if attempt > 0 || !staleHandle(err) {
			return fmt.Errorf("%s: %w", op, err)
		}
		t.forgetLocked()
	}
}

// locked runs fn, which needs no loaded object, holding the lock.
func (t *TPM) locked(op string, fn func() error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	if err := fn(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// forgetLocked drops every cached handle after a TPM restart.
func (t *TPM) forgetLocked() {
	t.srk = nil
	for s := range t.loaded {
		s.handle = 0
		delete(t.loaded, s)
	}
}

// staleHandle reports whether err means a handle no longer names a loaded
// object.
func staleHandle(err error) bool {
	return errors.Is(err, tpm2.TPMRCHandle) || errors.Is(err, tpm2.TPMRCReferenceH0) ||
		errors.Is(err, tpm2.TPMRCReferenceH1) || errors.Is(err, tpm2.TPMRCReferenceS0)
}

// srkLocked returns the SRK, creating it on first use. The template is the
// TCG reference ECC P-256 SRK (TCG TPM v2.0 Provisioning Guidance §7.5.1),
// so the key is the same every time on the same TPM: derived from the owner
// seed, it changes only when the owner hierarchy is cleared.
func (t *TPM) srkLocked() (*object, error) {
	if t.srk != nil {
		return t.srk, nil
	}
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(t.tr)
	if err != nil {
		return nil, fmt.Errorf("create SRK: %w", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		// Do not leak the slot; the error that matters is the parse error.
		_ = t.flush(rsp.ObjectHandle)
		return nil, fmt.Errorf("parse SRK public area: %w", err)
	}
	t.srk = &object{handle: rsp.ObjectHandle, name: rsp.Name, public: *pub}
	return t.srk, nil
}

// SRKName returns the TPM Name of the storage root key (nameAlg || SHA-256
// of its public area). It identifies the TPM and its owner hierarchy: a
// caller that records it can tell "another TPM" from "a damaged blob".
func (t *TPM) SRKName() ([]byte, error) {
	var name []byte
	err := t.do("read SRK name", func(srk *object) error {
		name = append([]byte(nil), srk.name.Buffer...)
		return nil
	})
	return name, err
}

// flush unloads a transient object or session. Callers hold mu.
func (t *TPM) flush(h tpm2.TPMHandle) error {
	if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(t.tr); err != nil {
		return fmt.Errorf("flush handle 0x%08x: %w", uint32(h), err)
	}
	return nil
}

// saltedHMAC is a one-use HMAC session salted to the SRK (ECDH), with
// AES-128-CFB encryption of the first parameter in the direction enc gives:
// what makes a secret on the bus unreadable to a probe (TPM 2.0 Part 1,
// "Session-based Encryption").
// enc is tpm2.AESEncryption(128, tpm2.EncryptIn or tpm2.EncryptOut), or
// nothing for a command without an encryptable parameter (the TPM refuses
// the encrypt attributes there).
func saltedHMAC(srk *object, auth []byte, enc ...tpm2.AuthOption) tpm2.Session {
	opts := append([]tpm2.AuthOption{tpm2.Auth(auth), tpm2.Salted(srk.handle, srk.public)}, enc...)
	return tpm2.HMAC(tpm2.TPMAlgSHA256, 16, opts...)
}
