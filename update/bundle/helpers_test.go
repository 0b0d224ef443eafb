package bundle

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hardphone/hardphone/test"
)

const testCompatible = "hardphone-test-board"

var (
	pkiOnce sync.Once
	pkiDir  string
	pkiVal  *test.UpdatePKI
)

// testPKI returns one PKI shared by the package's tests (key generation is
// the slow part of a small test).
func testPKI(t testing.TB) *test.UpdatePKI {
	t.Helper()
	pkiOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bundle-pki-")
		if err != nil {
			t.Fatalf("pki dir: %v", err)
		}
		pkiDir = dir
		pkiVal = test.NewUpdatePKI(t, dir)
	})
	return pkiVal
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pkiDir != "" {
		os.RemoveAll(pkiDir)
	}
	os.Exit(code)
}

func signerOf(ck test.CertKey, intermediates ...test.CertKey) Signer {
	s := Signer{Cert: ck.Cert, Key: ck.Key}
	for _, i := range intermediates {
		s.Intermediates = append(s.Intermediates, i.Cert)
	}
	return s
}

func keyringOf(t testing.TB, cks ...test.CertKey) *Keyring {
	t.Helper()
	var pemData []byte
	for _, ck := range cks {
		b, err := os.ReadFile(ck.CertFile)
		if err != nil {
			t.Fatalf("read %s: %v", ck.CertFile, err)
		}
		pemData = append(pemData, b...)
	}
	kr, err := ParseKeyring(pemData)
	if err != nil {
		t.Fatalf("ParseKeyring() error %v", err)
	}
	return kr
}

// randomImage writes size random bytes to dir/name.
func randomImage(t testing.TB, dir, name string, size int) string {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("rand: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatalf("write image: %v", err)
	}
	return path
}

// ownBundle makes a verity bundle with Create holding image as slot class
// rootfs.
func ownBundle(t testing.TB, dir string, s Signer, image string, secver uint64) string {
	t.Helper()
	m := &Manifest{Compatible: testCompatible, Version: "1.0.0",
		Images:          []Image{{SlotClass: "rootfs", Filename: filepath.Base(image)}},
		SecurityVersion: secver, HasSecurityVersion: true}
	out := filepath.Join(dir, "own.raucb")
	if err := Create(context.Background(), out, m, map[string]string{filepath.Base(image): image}, s); err != nil {
		t.Fatalf("Create() error %v", err)
	}
	return out
}

// readImage opens path, checks the payload and returns the rootfs image.
func readImage(t testing.TB, path string, kr *Keyring, opts ...Option) ([]byte, *Bundle) {
	t.Helper()
	b, err := OpenFile(path, kr, opts...)
	if err != nil {
		t.Fatalf("OpenFile() error %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.CheckPayload(context.Background(), nil); err != nil {
		t.Fatalf("CheckPayload() error %v", err)
	}
	im, ok := b.Manifest.Image("rootfs")
	if !ok {
		t.Fatalf("manifest has no rootfs image: %+v", b.Manifest)
	}
	r, err := b.OpenImage(im)
	if err != nil {
		t.Fatalf("OpenImage() error %v", err)
	}
	defer r.Close()
	var out bytes.Buffer
	if _, err := io.CopyBuffer(&out, r, make([]byte, 1<<20)); err != nil {
		t.Fatalf("read image: %v", err)
	}
	return out.Bytes(), b
}
