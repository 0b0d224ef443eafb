package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// maxAdvance bounds how many increments one AdvanceTo may issue. Every
// increment is an NV write, and a TPM rate-limits and wears out NV; a floor
// that jumps further than this is a caller bug, not a rollback defence.
const maxAdvance = 4096

// Counter is a monotonic 64-bit NV counter (TPM_NT_COUNTER in TPMA_NV,
// TPM 2.0 Part 2 §13.4): it can only be incremented, never set or decreased, and it
// survives reboots, TPM restarts and everything short of the owner deleting
// the index. The anti-rollback floor of the updater and the KEK generation
// of the credential store live in counters.
//
// The index is defined with TPMA_NV_OWNERWRITE (increments need owner
// authorization, empty by default) and TPMA_NV_AUTHREAD with an empty index
// auth (anyone may read it). A counter never incremented reads 0, and its
// first increment makes it 1 unless a counter was ever deleted on that TPM:
// then it starts above the largest value a deleted counter held (so a
// deleted and redefined index cannot roll back; checked on swtpm). An
// index holding a floor must therefore never be deleted and redefined.
type Counter struct {
	t     *TPM
	index tpm2.TPMHandle
}

// nvPublic is what TPM2_NV_ReadPublic says about an index now. The Name
// changes when TPMA_NV_WRITTEN becomes set, so it is read before each use.
type nvPublic struct {
	index   tpm2.TPMHandle
	name    tpm2.TPM2BName
	written bool
}

// checkNVIndex accepts handles in the NV index range (TPM_HT_NV_INDEX =
// 0x01, TPM 2.0 Part 2 §7.2).
func checkNVIndex(index uint32) error {
	if index>>24 != uint32(tpm2.TPMHTNVIndex) {
		return fmt.Errorf("NV index 0x%08x is not in the NV range 0x01000000-0x01ffffff", index)
	}
	return nil
}

// DefineCounter returns the counter at index, defining it first if no index
// exists there. An index that exists but is not a counter is an error.
func (t *TPM) DefineCounter(index uint32) (*Counter, error) {
	if err := checkNVIndex(index); err != nil {
		return nil, fmt.Errorf("define counter: %w", err)
	}
	c := &Counter{t: t, index: tpm2.TPMHandle(index)}
	err := t.do(fmt.Sprintf("define counter 0x%08x", index), func(srk *object) error {
		_, err := c.publicLocked()
		if err == nil || !errors.Is(err, ErrNoCounter) {
			return err
		}
		_, err = tpm2.NVDefineSpace{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: saltedHMAC(srk, nil, tpm2.AESEncryption(128, tpm2.EncryptIn))},
			Auth:       tpm2.TPM2BAuth{},
			PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
				NVIndex: c.index,
				NameAlg: tpm2.TPMAlgSHA256,
				Attributes: tpm2.TPMANV{
					OwnerWrite: true,
					OwnerRead:  true,
					AuthRead:   true,
					NoDA:       true,
					NT:         tpm2.TPMNTCounter,
				},
				DataSize: 8,
			}),
		}.Execute(t.tr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// OpenCounter returns the counter at index; it wraps ErrNoCounter when no
// index is defined there.
func (t *TPM) OpenCounter(index uint32) (*Counter, error) {
	if err := checkNVIndex(index); err != nil {
		return nil, fmt.Errorf("open counter: %w", err)
	}
	c := &Counter{t: t, index: tpm2.TPMHandle(index)}
	if err := t.locked(fmt.Sprintf("open counter 0x%08x", index), func() error {
		_, err := c.publicLocked()
		return err
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Index returns the counter's NV handle.
func (c *Counter) Index() uint32 { return uint32(c.index) }

// publicLocked reads the index's public area and checks that it is a
// counter. Callers hold c.t.mu.
func (c *Counter) publicLocked() (*nvPublic, error) {
	rsp, err := tpm2.NVReadPublic{NVIndex: c.index}.Execute(c.t.tr)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return nil, fmt.Errorf("%w at 0x%08x", ErrNoCounter, uint32(c.index))
		}
		return nil, fmt.Errorf("read NV public 0x%08x: %w", uint32(c.index), err)
	}
	pub, err := rsp.NVPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("parse NV public 0x%08x: %w", uint32(c.index), err)
	}
	if pub.Attributes.NT != tpm2.TPMNTCounter || pub.DataSize != 8 {
		return nil, fmt.Errorf("%w: 0x%08x has type %d, size %d", errNotCounter, uint32(c.index), pub.Attributes.NT, pub.DataSize)
	}
	return &nvPublic{index: c.index, name: rsp.NVName, written: pub.Attributes.Written}, nil
}

// Read returns the counter's value; 0 if it was never incremented.
func (c *Counter) Read() (uint64, error) {
	var v uint64
	err := c.t.locked(fmt.Sprintf("read counter 0x%08x", uint32(c.index)), func() error {
		var err error
		v, err = c.readLocked()
		return err
	})
	return v, err
}

func (c *Counter) readLocked() (uint64, error) {
	nv, err := c.publicLocked()
	if err != nil {
		return 0, err
	}
	if !nv.written {
		return 0, nil
	}
	rsp, err := tpm2.NVRead{
		AuthHandle: tpm2.AuthHandle{Handle: nv.index, Name: nv.name, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: nv.index, Name: nv.name},
		Size:       8,
	}.Execute(c.t.tr)
	if err != nil {
		return 0, err
	}
	if len(rsp.Data.Buffer) != 8 {
		return 0, fmt.Errorf("counter read returned %d bytes, want 8", len(rsp.Data.Buffer))
	}
	return binary.BigEndian.Uint64(rsp.Data.Buffer), nil
}

// Increment adds one to the counter (TPM2_NV_Increment, TPM 2.0 Part 3
// §31.8).
func (c *Counter) Increment() error {
	return c.t.do(fmt.Sprintf("increment counter 0x%08x", uint32(c.index)), func(srk *object) error {
		return c.incrementLocked(srk)
	})
}

func (c *Counter) incrementLocked(srk *object) error {
	nv, err := c.publicLocked()
	if err != nil {
		return err
	}
	_, err = tpm2.NVIncrement{
		// NV_Increment has no parameter to encrypt; the salt still keeps
		// a non-empty owner auth from being guessable off the bus.
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: saltedHMAC(srk, nil)},
		NVIndex:    tpm2.NamedHandle{Handle: nv.index, Name: nv.name},
	}.Execute(c.t.tr)
	return err
}

// AdvanceTo increments the counter until it holds at least n. A counter
// already at or above n is left alone. It refuses to issue more than 4096
// increments in one call.
func (c *Counter) AdvanceTo(n uint64) error {
	return c.t.do(fmt.Sprintf("advance counter 0x%08x to %d", uint32(c.index), n), func(srk *object) error {
		v, err := c.readLocked()
		if err != nil {
			return err
		}
		if v >= n {
			return nil
		}
		if n-v > maxAdvance {
			return fmt.Errorf("counter at %d: advancing to %d needs %d increments, more than %d", v, n, n-v, maxAdvance)
		}
		for v < n {
			if err := c.incrementLocked(srk); err != nil {
				return err
			}
			// Read back rather than count: the first increment of an
			// unwritten counter may jump (see Counter).
			if v, err = c.readLocked(); err != nil {
				return err
			}
		}
		return nil
	})
}
