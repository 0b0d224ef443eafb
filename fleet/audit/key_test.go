package audit

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "log.key"), filepath.Join(dir, "log.pub")
	vkey, err := WriteKeyFiles(priv, pub, "fleet.example/audit")
	if err != nil {
		t.Fatalf("WriteKeyFiles error %v", err)
	}
	st, err := os.Stat(priv)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	k, err := LoadKey(priv)
	if err != nil {
		t.Fatalf("LoadKey error %v", err)
	}
	if k.VerifierKey() != vkey || k.Origin() != "fleet.example/audit" {
		t.Fatalf("LoadKey = %s origin %s, want %s", k.VerifierKey(), k.Origin(), vkey)
	}
	trust, err := LoadTrust(pub)
	if err != nil {
		t.Fatalf("LoadTrust error %v", err)
	}
	cp, err := k.signCheckpoint(3, [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCheckpoint(cp.Note, trust); err != nil {
		t.Fatalf("ParseCheckpoint with the loaded trust error %v", err)
	}
	if _, err := WriteKeyFiles(priv, pub, "fleet.example/audit"); err == nil {
		t.Fatalf("WriteKeyFiles over an existing key succeeded")
	}
	if _, err := LoadTrust(priv); err == nil {
		t.Fatalf("LoadTrust(private key file) succeeded")
	}
}

func TestLoadKeyRefusesOpenPermissions(t *testing.T) {
	dir := t.TempDir()
	priv := filepath.Join(dir, "log.key")
	if _, err := WriteKeyFiles(priv, filepath.Join(dir, "log.pub"), "o"); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			if err := os.Chmod(priv, mode); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadKey(priv); !errors.Is(err, ErrKeyPermissions) {
				t.Fatalf("LoadKey(mode %04o) error %v, want ErrKeyPermissions", mode, err)
			}
		})
	}
	if err := os.Chmod(priv, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(priv); err != nil {
		t.Fatalf("LoadKey(mode 0400) error %v", err)
	}
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(priv, link); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(link); err == nil {
		t.Fatalf("LoadKey(symlink) succeeded")
	}
	if _, err := LoadKey(dir); err == nil {
		t.Fatalf("LoadKey(directory) succeeded")
	}
}

func TestKeyNeverPrinted(t *testing.T) {
	skey, _, err := GenerateKey("o")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.SplitN(skey, "+", 5)[4] // base64 may hold "+"
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "key", k)
	for _, s := range []string{buf.String(), fmt.Sprint(k), fmt.Sprintf("%v %+v %#v", k, k, k)} {
		if strings.Contains(s, secret) || strings.Contains(s, "PRIVATE") {
			t.Fatalf("key printed: %s", s)
		}
	}
	if !strings.Contains(buf.String(), "REDACTED") {
		t.Fatalf("slog output %q, want REDACTED", buf.String())
	}
}

func TestParseKeyRefusals(t *testing.T) {
	for _, s := range []string{"", "PRIVATE+KEY+x", "not a key", "PRIVATE+KEY+bad name+00000000+AQ=="} {
		if _, err := ParseKey(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseKey(%q) error %v, want ErrInvalid", s, err)
		}
	}
	for _, s := range []string{"", "origin with space", "x+y"} {
		if _, err := NewTrust(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewTrust(%q) error %v, want ErrInvalid", s, err)
		}
	}
}

// TestSealIsNoNote: a seal's message can never be a valid note text, so
// a seal cannot be replayed as a checkpoint signature.
func TestSealIsNoNote(t *testing.T) {
	msg := sealMessage("o", [32]byte{})
	if !bytes.HasPrefix(msg, []byte{0}) {
		t.Fatalf("seal message %q does not start with NUL", msg)
	}
}
