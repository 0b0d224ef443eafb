package credstore

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/test"
)

// debugPCR is PCR 16, which tests may extend without touching boot PCRs.
const debugPCR = 16

// env is one test device: a swtpm (nil for software-only envs), a state
// directory and the state file in it.
type env struct {
	sw     *test.SWTPM
	tpm    *tpm.TPM
	dir    string
	dbPath string
	db     *bolt.DB
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("mkdir state: %v", err)
	}
	return &env{dir: dir, dbPath: filepath.Join(dir, "state.db")}
}

// newTPMEnv starts a fresh swtpm for the device.
func newTPMEnv(t testing.TB, opts ...test.SWTPMOption) *env {
	t.Helper()
	e := newEnv(t)
	e.sw = test.StartSWTPM(t, opts...)
	e.tpm = openTPM(t, e.sw)
	return e
}

func openTPM(t testing.TB, sw *test.SWTPM) *tpm.TPM {
	t.Helper()
	tp, err := tpm.Open(sw.Spec)
	if err != nil {
		t.Fatalf("tpm.Open(%q) = %v", sw.Spec, err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

// openDB opens the env's state file; it closes at cleanup unless closed
// before.
func (e *env) openDB(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(e.dbPath, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("bolt.Open(%s) = %v", e.dbPath, err)
	}
	e.db = db
	t.Cleanup(func() { db.Close() })
	return db
}

func (e *env) closeDB(t testing.TB) {
	t.Helper()
	if e.db == nil {
		return
	}
	if err := e.db.Close(); err != nil {
		t.Fatalf("close db: %v", err)
	}
	e.db = nil
}

func (e *env) tpmProtector(t testing.TB, opts ...TPMOption) *Protector {
	t.Helper()
	p, err := NewTPMProtector(e.tpm, opts...)
	if err != nil {
		t.Fatalf("NewTPMProtector = %v", err)
	}
	return p
}

func (e *env) softProtector(t testing.TB) *Protector {
	t.Helper()
	p, err := NewSoftwareProtector(filepath.Join(e.dir, "kek"))
	if err != nil {
		t.Fatalf("NewSoftwareProtector = %v", err)
	}
	return p
}

// open opens the store on a fresh db handle.
func (e *env) open(t testing.TB, p *Protector, opts ...Option) *Store {
	t.Helper()
	if e.db == nil {
		e.openDB(t)
	}
	s, err := Open(e.db, p, opts...)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// kind builds the protector of one flavour, for tests run against both.
type kind struct {
	name string
	env  func(testing.TB) *env
	prot func(*env, testing.TB) *Protector
}

var kinds = []kind{
	{"tpm", func(t testing.TB) *env { return newTPMEnv(t) }, func(e *env, t testing.TB) *Protector { return e.tpmProtector(t) }},
	{"software", newEnv, func(e *env, t testing.TB) *Protector { return e.softProtector(t) }},
}

// logSink collects log output.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLog() (*slog.Logger, *logSink) {
	sink := &logSink{}
	return slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug})), sink
}

func mustPut(t testing.TB, s *Store, name, value string) {
	t.Helper()
	if err := s.Put(name, []byte(value)); err != nil {
		t.Fatalf("Put(%q) = %v", name, err)
	}
}

func wantGet(t testing.TB, s *Store, name, want string) {
	t.Helper()
	got, err := s.Get(name)
	if err != nil {
		t.Fatalf("Get(%q) = %v, want %q", name, err, want)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", name, []byte(got), want)
	}
}

// issueCert has a test CA sign a certificate for the CSR and returns it
// as DER.
func issueCert(t testing.TB, csrDER []byte) []byte {
	t.Helper()
	pki := test.NewPKI(t, filepath.Join(t.TempDir(), "pki"))
	b, err := os.ReadFile(pki.ClientForCSR(csrDER))
	if err != nil {
		t.Fatalf("read issued certificate: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("issued certificate is not PEM")
	}
	return blk.Bytes
}

// enrol creates the identity key and imports a certificate for it.
func enrol(t testing.TB, s *Store, cn string) {
	t.Helper()
	if err := s.CreateIdentity(false); err != nil {
		t.Fatalf("CreateIdentity = %v", err)
	}
	csr, err := s.CreateCSR(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}})
	if err != nil {
		t.Fatalf("CreateCSR = %v", err)
	}
	if err := s.ImportCertificate([][]byte{issueCert(t, csr)}); err != nil {
		t.Fatalf("ImportCertificate = %v", err)
	}
}

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatalf("read dir: %v", err)
	}
	for _, de := range ents {
		if !de.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatalf("copy: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o600); err != nil {
			t.Fatalf("copy: %v", err)
		}
	}
	return dst
}

// clone is a copy of e's state directory on the same TPM.
func (e *env) clone(t testing.TB) *env {
	t.Helper()
	dir := copyDir(t, e.dir)
	return &env{sw: e.sw, tpm: e.tpm, dir: dir, dbPath: filepath.Join(dir, "state.db")}
}

func readPEMCert(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s is not PEM", path)
	}
	return blk.Bytes
}

// openProtector opens the protector a spec names, as the wiring does:
// "software:FILE" or a TPM hal/tpm.Open understands, owned by the protector.
func openProtector(spec string) (*Protector, error) {
	if path, ok := strings.CutPrefix(spec, "software:"); ok {
		return NewSoftwareProtector(path)
	}
	t, err := tpm.Open(spec)
	if err != nil {
		return nil, err
	}
	p, err := NewTPMProtector(t, OwnTPM())
	if err != nil {
		return nil, errors.Join(err, t.Close())
	}
	return p, nil
}
