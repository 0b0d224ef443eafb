package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A checkpoint is a signed note (golang.org/x/mod/sumdb/note) whose text
// is the C2SP tlog-checkpoint body:
//
//	<origin>\n
//	<tree size, decimal>\n
//	<root hash, standard base64>\n
//
// followed by a blank line and one "— <key name> <base64(key hash ||
// Ed25519 signature)>" line per signature. The root is the RFC 6962 §2.1
// Merkle tree hash of the first size entries.

// maxCheckpoint bounds a checkpoint note read from outside.
const maxCheckpoint = 4 << 10

// Checkpoint is a verified (or freshly signed) statement of the log's
// size and root.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
	// Note is the signed note as published and stored.
	Note []byte
}

// String is the checkpoint's one-line summary.
func (c Checkpoint) String() string {
	return fmt.Sprintf("%s size %d root %s", c.Origin, c.Size, c.Root)
}

func checkpointText(origin string, size int64, root tlog.Hash) string {
	return origin + "\n" + strconv.FormatInt(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
}

// signCheckpoint signs the checkpoint of a tree of size entries.
func (k *Key) signCheckpoint(size int64, root tlog.Hash) (Checkpoint, error) {
	msg, err := note.Sign(&note.Note{Text: checkpointText(k.Origin(), size, root)}, k.signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return Checkpoint{Origin: k.Origin(), Size: size, Root: root, Note: msg}, nil
}

// ParseCheckpoint verifies a checkpoint note against the trusted keys and
// parses its text. A note no trusted key signed, or whose trusted
// signature does not verify, fails with ErrBadSignature; a malformed one
// with ErrInvalid.
func ParseCheckpoint(msg []byte, trust *Trust) (Checkpoint, error) {
	if len(msg) > maxCheckpoint {
		return Checkpoint{}, fmt.Errorf("checkpoint of %d bytes, at most %d: %w", len(msg), maxCheckpoint, ErrInvalid)
	}
	n, err := note.Open(msg, trust)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, fmt.Errorf("checkpoint: signed by no trusted key: %w", ErrBadSignature)
		case errors.As(err, &invalid):
			return Checkpoint{}, fmt.Errorf("checkpoint: signature of %s+%08x does not verify: %w", invalid.Name, invalid.Hash, ErrBadSignature)
		}
		return Checkpoint{}, fmt.Errorf("checkpoint: %v: %w", err, ErrInvalid)
	}
	origin, size, root, err := parseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	// The key that signed must be the log's: a key trusted for another
	// log does not vouch for this one.
	signed := false
	for _, s := range n.Sigs {
		if s.Name == origin {
			signed = true
		}
	}
	if !signed {
		return Checkpoint{}, fmt.Errorf("checkpoint of %s signed by another log's key: %w", origin, ErrBadSignature)
	}
	return Checkpoint{Origin: origin, Size: size, Root: root, Note: bytes.Clone(msg)}, nil
}

func parseCheckpointText(text string) (origin string, size int64, root tlog.Hash, err error) {
	lines := strings.Split(text, "\n")
	// Three lines and the empty string after the last newline; extension
	// lines are not written by this log and not accepted.
	if len(lines) != 4 || lines[3] != "" {
		return "", 0, root, fmt.Errorf("checkpoint text of %d lines, want 3: %w", len(lines)-1, ErrInvalid)
	}
	origin = lines[0]
	if err := checkOrigin(origin); err != nil {
		return "", 0, root, fmt.Errorf("checkpoint: %w", err)
	}
	size, perr := strconv.ParseInt(lines[1], 10, 64)
	if perr != nil || size < 1 || strconv.FormatInt(size, 10) != lines[1] {
		return "", 0, root, fmt.Errorf("checkpoint size %q: %w", lines[1], ErrInvalid)
	}
	h, derr := base64.StdEncoding.Strict().DecodeString(lines[2])
	if derr != nil || len(h) != tlog.HashSize {
		return "", 0, root, fmt.Errorf("checkpoint root %q: %w", lines[2], ErrInvalid)
	}
	copy(root[:], h)
	return origin, size, root, nil
}

// VerifyInclusion checks that data is the entry at index in the tree cp
// signed (RFC 6962 §2.1.1 audit path, as tlog.CheckRecord).
func VerifyInclusion(cp Checkpoint, index int64, data []byte, proof tlog.RecordProof) error {
	if index < 0 || index >= cp.Size {
		return fmt.Errorf("verify inclusion of %d in a tree of %d: %w", index, cp.Size, ErrInvalid)
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Root, index, tlog.RecordHash(data)); err != nil {
		return fmt.Errorf("verify inclusion of %d in a tree of %d: %v: %w", index, cp.Size, err, ErrTampered)
	}
	return nil
}

// VerifyConsistency checks that the tree old signed is a prefix of the
// tree new signed (RFC 6962 §2.1.2 consistency proof, as tlog.CheckTree).
// The two must be of the same log.
func VerifyConsistency(old, new Checkpoint, proof tlog.TreeProof) error {
	if old.Origin != new.Origin {
		return fmt.Errorf("verify consistency: checkpoints of %s and %s: %w", old.Origin, new.Origin, ErrInvalid)
	}
	if old.Size > new.Size {
		old, new = new, old
	}
	if err := tlog.CheckTree(proof, new.Size, new.Root, old.Size, old.Root); err != nil {
		return fmt.Errorf("verify consistency of %d with %d: %v: %w", old.Size, new.Size, err, ErrTampered)
	}
	return nil
}

// A seal binds one entry to the log: the log key's signature over
//
//	0x00 "hardphone-audit-seal-v1" 0x00 <origin> 0x00 <leaf hash>
//
// stored as key hash (4 bytes, big-endian) || Ed25519 signature. The
// leading NUL keeps a seal from ever being a valid note text (notes refuse
// control characters), so no seal can pass for a checkpoint signature.
const sealDomain = "\x00hardphone-audit-seal-v1\x00"

// SealSize is the length of a seal.
const SealSize = 4 + 64

func sealMessage(origin string, leaf tlog.Hash) []byte {
	b := make([]byte, 0, len(sealDomain)+len(origin)+1+tlog.HashSize)
	b = append(b, sealDomain...)
	b = append(b, origin...)
	b = append(b, 0)
	return append(b, leaf[:]...)
}

func (k *Key) seal(leaf tlog.Hash) ([]byte, error) {
	sig, err := k.signer.Sign(sealMessage(k.Origin(), leaf))
	if err != nil {
		return nil, fmt.Errorf("seal entry: %w", err)
	}
	return append(binary.BigEndian.AppendUint32(nil, k.signer.KeyHash()), sig...), nil
}

// checkSeal verifies a seal against the trusted keys of origin.
func (t *Trust) checkSeal(origin string, data, seal []byte) error {
	if len(seal) != SealSize {
		return fmt.Errorf("seal of %d bytes, want %d: %w", len(seal), SealSize, ErrBadSignature)
	}
	v, err := t.Verifier(origin, binary.BigEndian.Uint32(seal))
	if err != nil {
		return fmt.Errorf("seal by key %s+%08x: %w", origin, binary.BigEndian.Uint32(seal), ErrBadSignature)
	}
	if !v.Verify(sealMessage(origin, tlog.RecordHash(data)), seal[4:]) {
		return fmt.Errorf("seal does not verify: %w", ErrBadSignature)
	}
	return nil
}
