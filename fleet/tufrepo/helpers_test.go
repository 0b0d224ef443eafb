package tufrepo

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
	"github.com/hardphone/hardphone/update/bundle"
)

const testCompatible = "hardphone-test-board"

var (
	pkiOnce sync.Once
	pkiDir  string
	pkiVal  *test.UpdatePKI
)

// testPKI is one bundle-signing PKI shared by the package's tests.
func testPKI(t testing.TB) *test.UpdatePKI {
	t.Helper()
	pkiOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tufrepo-pki-")
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

func keyring(t testing.TB) *bundle.Keyring {
	t.Helper()
	kr, err := bundle.LoadKeyring(testPKI(t).CA.CertFile)
	if err != nil {
		t.Fatalf("LoadKeyring: %v", err)
	}
	return kr
}

// makeBundle writes a small signed verity bundle and returns its path.
func makeBundle(t testing.TB, dir, version string, secver uint64, signer test.CertKey) string {
	t.Helper()
	img := filepath.Join(dir, "rootfs-"+version+".img")
	b := make([]byte, 64<<10)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("rand: %v", err)
	}
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatalf("write image: %v", err)
	}
	out := filepath.Join(dir, "hardphone-"+version+".raucb")
	m := &bundle.Manifest{Compatible: testCompatible, Version: version, SecurityVersion: secver, HasSecurityVersion: true,
		Images: []bundle.Image{{SlotClass: "rootfs", Filename: filepath.Base(img)}}}
	s := bundle.Signer{Cert: signer.Cert, Key: signer.Key}
	if err := bundle.Create(context.Background(), out, m, map[string]string{filepath.Base(img): img}, s); err != nil {
		t.Fatalf("bundle.Create: %v", err)
	}
	return out
}

// genKeys makes n private keys in dir named prefix-i.
func genKeys(t testing.TB, dir, prefix string, n int, alg string) []*Key {
	t.Helper()
	var ks []*Key
	for i := 0; i < n; i++ {
		k, err := GenerateKey(filepath.Join(dir, prefix+"-"+string(rune('a'+i))+".pem"), alg)
		if err != nil {
			t.Fatalf("GenerateKey: %v", err)
		}
		ks = append(ks, k)
	}
	return ks
}

func publics(ks []*Key) []*Key {
	var out []*Key
	for _, k := range ks {
		out = append(out, k.Public())
	}
	return out
}

// fixedClock is a settable clock.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fixedClock { return &fixedClock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
