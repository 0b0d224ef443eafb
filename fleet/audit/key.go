package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"golang.org/x/mod/sumdb/note"
)

// A log key is an Ed25519 key in the text forms of golang.org/x/mod/sumdb/note:
//
//	private: PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>
//	public:  <name>+<hash>+<base64(0x01 || public key)>
//
// The name is the log's origin (the first line of its checkpoints, C2SP
// tlog-checkpoint); hash is the first four bytes of SHA-256(name "\n" 0x01
// public key), which each signature carries.

// maxKeyFile bounds a key or trust file read.
const maxKeyFile = 64 << 10

// Key is the log's signing key: it signs checkpoints and seals entries.
// It never prints its secret (LogValue, String).
type Key struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

// GenerateKey makes a new key for a log named origin and returns its
// private and public text forms.
func GenerateKey(origin string) (skey, vkey string, err error) {
	if err := checkOrigin(origin); err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	skey, vkey, err = note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	return skey, vkey, nil
}

// WriteKeyFiles generates a key for origin and writes it to privPath
// (created, never overwritten, mode 0600) and its public form to pubPath
// (mode 0644), returning the public form.
func WriteKeyFiles(privPath, pubPath, origin string) (vkey string, err error) {
	skey, vkey, err := GenerateKey(origin)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(privPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("write key: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write key %s: %w", privPath, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("write key %s: %w", privPath, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write key %s: %w", privPath, err)
	}
	if err := os.WriteFile(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write public key: %w", err)
	}
	return vkey, nil
}

// ParseKey parses a private key's text form.
func ParseKey(skey string) (*Key, error) {
	skey = strings.TrimSpace(skey)
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("parse log key: %w", ErrInvalid) // note's error may quote the key
	}
	if err := checkOrigin(signer.Name()); err != nil {
		return nil, fmt.Errorf("parse log key: name: %w", err)
	}
	// PRIVATE+KEY+name+hash+base64 (names hold no '+', base64 may): the
	// seed follows the algorithm byte.
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return nil, fmt.Errorf("parse log key: %w", ErrInvalid)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, fmt.Errorf("parse log key: not an Ed25519 key: %w", ErrInvalid)
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("parse log key: %w", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("parse log key: %w", err)
	}
	if verifier.KeyHash() != signer.KeyHash() {
		return nil, fmt.Errorf("parse log key: key hash does not match the key: %w", ErrInvalid)
	}
	return &Key{signer: signer, verifier: verifier, vkey: vkey}, nil
}

// LoadKey reads a private key file. The file must be a regular file that
// neither group nor others may read or write (ErrKeyPermissions): a key
// others can read is a key others may hold.
func LoadKey(path string) (*Key, error) {
	b, err := readPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("load log key: %w", err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("load log key %s: %w", path, err)
	}
	return k, nil
}

// readPrivate opens path without following a final symlink, checks the
// mode of what it opened (not of a name that may change in between) and
// reads at most maxKeyFile bytes.
func readPrivate(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", path, ErrKeyPermissions)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o, want 0600 or stricter: %w", path, perm, ErrKeyPermissions)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s is over %d bytes: %w", path, maxKeyFile, ErrInvalid)
	}
	return b, nil
}

// Origin is the log's name, the key's name.
func (k *Key) Origin() string { return k.signer.Name() }

// VerifierKey is the public form, for hpctl's trust file.
func (k *Key) VerifierKey() string { return k.vkey }

// Trust returns a Trust holding this key's public half.
func (k *Key) Trust() *Trust { return &Trust{list: []note.Verifier{k.verifier}} }

// LogValue implements slog.LogValuer: the key is never logged.
func (k *Key) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String names the key by its public form only.
func (k *Key) String() string { return "audit log key " + k.vkey }

// GoString keeps %#v from printing the signer's fields.
func (k *Key) GoString() string { return k.String() }

// Trust is the set of public keys a verifier accepts for a log: the log's
// key, and its previous keys after a rotation, or one key per hpfleet
// replica when replicas sign with their own.
type Trust struct {
	list []note.Verifier // never empty
}

// NewTrust parses public keys in their text form.
func NewTrust(vkeys ...string) (*Trust, error) {
	t := &Trust{}
	for _, v := range vkeys {
		ver, err := note.NewVerifier(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("trusted key %q: %w", v, ErrInvalid)
		}
		if err := checkOrigin(ver.Name()); err != nil {
			return nil, fmt.Errorf("trusted key %q: %w", v, err)
		}
		t.list = append(t.list, ver)
	}
	if len(t.list) == 0 {
		return nil, fmt.Errorf("no trusted key: %w", ErrInvalid)
	}
	return t, nil
}

// LoadTrust reads public keys, one per line ('#' starts a comment).
func LoadTrust(path string) (*Trust, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load trusted keys: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("load trusted keys %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("load trusted keys %s: over %d bytes: %w", path, maxKeyFile, ErrInvalid)
	}
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "PRIVATE+") {
			return nil, fmt.Errorf("load trusted keys %s: holds a private key: %w", path, ErrInvalid)
		}
		keys = append(keys, line)
	}
	t, err := NewTrust(keys...)
	if err != nil {
		return nil, fmt.Errorf("load trusted keys %s: %w", path, err)
	}
	return t, nil
}

// Verifier implements note.Verifiers: the trusted key with that name and
// key hash.
func (t *Trust) Verifier(name string, hash uint32) (note.Verifier, error) {
	var found note.Verifier
	for _, v := range t.list {
		if v.Name() == name && v.KeyHash() == hash {
			if found != nil {
				return nil, fmt.Errorf("two trusted keys named %s with hash %08x: %w", name, hash, ErrInvalid)
			}
			found = v
		}
	}
	if found == nil {
		return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
	}
	return found, nil
}

var _ note.Verifiers = (*Trust)(nil)

// checkOrigin accepts a log name usable as a note key name and a
// checkpoint's first line: 1..128 bytes of [A-Za-z0-9._/:-].
func checkOrigin(s string) error {
	if len(s) == 0 || len(s) > 128 {
		return fmt.Errorf("origin of %d bytes, want 1..128: %w", len(s), ErrInvalid)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._/:-", c) >= 0) {
			return fmt.Errorf("origin %q: want [A-Za-z0-9._/:-]: %w", s, ErrInvalid)
		}
	}
	return nil
}
