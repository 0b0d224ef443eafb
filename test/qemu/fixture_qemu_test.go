package qemu

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/system"
	"github.com/hardphone/hardphone/test"
)

// Timeouts for one emulated boot. A boot takes 2-4 s to registration under
// TCG; the margins cover a loaded CI machine.
const (
	bootTimeout    = 60 * time.Second
	installTimeout = 120 * time.Second
	sipUser        = "alice"
)

// fixture is what every scenario shares, built once by the first test that
// needs it.
type fixture struct {
	root      string // the module root
	hpctl     string // host hpctl
	phone     string // hardphone for linux/arm64
	pki       *test.PKI
	upki      *test.UpdatePKI
	regCert   string // Kamailio's certificate: IP SAN 10.0.2.100 (the guest's view)
	regKey    string
	password  string
	base      string // base image directory (slot A: version 1, security version 1)
	tpmState  string // the provisioned TPM (identity key, sealed password, floor 1)
	mu        sync.Mutex
	bundles   map[string]string // built on demand by bundle()
	mediaDone map[string]string
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  string
)

// getFixture builds the shared fixture, or fails the test with the reason
// an earlier attempt failed.
func getFixture(t *testing.T) *fixture {
	t.Helper()
	if workDir == "" {
		t.Skip("needs the private network namespace (root)")
	}
	fixOnce.Do(func() {
		fixErr = "fixture setup failed in an earlier test"
		f := buildFixture(t)
		fix, fixErr = f, ""
	})
	if fixErr != "" {
		t.Fatal(fixErr)
	}
	return fix
}

func buildFixture(t *testing.T) *fixture {
	for _, tool := range []string{"qemu-system-aarch64", "swtpm", "socat", "mkfs.ext4", "mkfs.vfat", "mcopy",
		"mkimage", "mkenvimage", "sfdisk", "depmod", "dpkg-deb", "apt-get", "mksquashfs", "kamailio", "fw_printenv"} {
		test.RequireTool(t, tool)
	}
	start := time.Now()
	f := &fixture{root: moduleRoot(t), bundles: map[string]string{}, mediaDone: map[string]string{}}
	f.hpctl = filepath.Join(workDir, "hpctl")
	f.phone = filepath.Join(workDir, "hardphone-arm64")
	goBuild(t, f.root, f.hpctl, "./cmd/hpctl")
	goBuild(t, f.root, f.phone, "./cmd/hardphone", "GOARCH=arm64")
	// This namespace has no way out: the kernel must already be in the
	// cache (make kernel, a prerequisite of make test and make qemu-test).
	// Fail here, with hpctl's words on what to run, before anything else.
	f.hpctlRun(t, "image", "kernel", "--board", "qemu-arm64", "--offline", "--cache", filepath.Join(f.root, ".cache", "hpctl"))
	f.pki = test.NewPKI(t, filepath.Join(workDir, "pki"))
	f.regCert, f.regKey = f.pki.Server("10.0.2.100", net.ParseIP("10.0.2.100"), net.ParseIP("127.0.0.1"))
	f.upki = test.NewUpdatePKI(t, filepath.Join(workDir, "update-pki"))
	pw := make([]byte, 12)
	if _, err := rand.Read(pw); err != nil {
		t.Fatalf("password: %v", err)
	}
	f.password = hex.EncodeToString(pw)
	data := filepath.Join(workDir, "data")
	f.tpmState = filepath.Join(workDir, "tpm")
	f.provision(t, data)
	f.base = filepath.Join(workDir, "base")
	f.hpctlRun(t, "image", "build", "--board", "qemu-arm64", "--hardphone", f.phone, "-o", f.base, "--offline",
		"--cache", filepath.Join(f.root, ".cache", "hpctl"), "--ca", f.pki.CAFile,
		"--keyring", f.upki.CA.CertFile, "--signer-cert", f.upki.Leaf.CertFile, "--signer-key", f.upki.Leaf.KeyFile,
		"--user", sipUser, "--version", "1", "--security-version", "1", "--data", data)
	t.Logf("fixture: binaries, PKIs, provisioned TPM and base image in %v", time.Since(start).Round(time.Millisecond))
	return f
}

// provision is the factory station for the fixture's phones; see
// provisionTPM.
func (f *fixture) provision(t *testing.T, data string) {
	provisionTPM(t, f.tpmState, filepath.Join(data, "hardphone"), f.password, func(csr []byte) []byte {
		b, err := os.ReadFile(f.pki.ClientForCSR(csr))
		if err != nil {
			t.Fatalf("provision: %v", err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("provision: issued certificate is not PEM")
		}
		return blk.Bytes
	})
}

// provisionTPM enrols the phone's own TPM (the swtpm state in tpmDir that
// QEMU will attach) before the first boot, as a factory station would: the
// identity key is created inside that TPM and never leaves it; issue (the
// CA) signs the CSR the TPM key signed; the SIP password is sealed under
// the TPM's KEK; the anti-rollback floor is set to the shipped image's
// security version, 1. The state file lands in state, for the data
// partition. The phone's first boot then has to load the key, unseal the
// password and register with both.
func provisionTPM(t *testing.T, tpmDir, state, password string, issue func(csrDER []byte) []byte) {
	t.Helper()
	for _, d := range []string{tpmDir, state} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatalf("provision: %v", err)
		}
	}
	sw := test.StartSWTPM(t, test.SWTPMState(tpmDir))
	creds, err := system.OpenCredentials(system.CredentialSpec{StateDir: state, Protector: sw.Spec}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("provision: open credential store on %s: %v", sw.Spec, err)
	}
	if err := creds.CreateIdentity(false); err != nil {
		t.Fatalf("provision: identity key: %v", err)
	}
	csr, err := creds.CreateCSR(&x509.CertificateRequest{Subject: pkix.Name{CommonName: sipUser}})
	if err != nil {
		t.Fatalf("provision: CSR: %v", err)
	}
	if err := creds.ImportCertificate([][]byte{issue(csr)}); err != nil {
		t.Fatalf("provision: import certificate: %v", err)
	}
	if err := creds.Put("sip/"+sipUser, []byte(password)); err != nil {
		t.Fatalf("provision: seal password: %v", err)
	}
	c, err := creds.Protector().Counter(system.FloorCounterIndex)
	if err != nil {
		t.Fatalf("provision: floor counter: %v", err)
	}
	if err := c.AdvanceTo(1); err != nil {
		t.Fatalf("provision: floor: %v", err)
	}
	if err := creds.Close(); err != nil {
		t.Fatalf("provision: %v", err)
	}
	sw.Stop(t)
}

// phone is one scenario's phone: its own copy of the disk and TPM.
type phone struct {
	f    *fixture
	dir  string
	disk string
	tpm  string
	k    *test.Kamailio
}

// newPhone copies the base image and the provisioned TPM and starts the
// registrar the phone registers to: Kamailio on 127.0.0.1:5061, mutual
// TLS with the test CA, SHA-256 digest, the sealed password.
func newPhone(t *testing.T) *phone {
	f := getFixture(t)
	p := &phone{f: f, dir: t.TempDir()}
	p.disk = filepath.Join(p.dir, "disk.img")
	run(t, "cp", "--sparse=always", filepath.Join(f.base, "disk.img"), p.disk)
	p.tpm = filepath.Join(p.dir, "tpm")
	run(t, "cp", "-a", f.tpmState, p.tpm)
	p.k = test.StartKamailio(t, test.KamailioPKI(f.pki), test.KamailioCert(f.regCert, f.regKey),
		test.KamailioUsers(map[string]string{sipUser: f.password}), test.KamailioDigestAlgorithm("SHA-256"))
	return p
}

// boot powers the phone on, with an update medium attached when medium is
// not "".
func (p *phone) boot(t *testing.T, medium string) *test.QEMU {
	t.Helper()
	return test.StartQEMU(t, test.QEMUConfig{Disk: p.disk, Flash: filepath.Join(p.f.base, "flash1.img"),
		TPMState: p.tpm, Medium: medium, SIPPort: 5061, Dir: p.dir})
}

// bundle builds (once) a slot image and its bundle: version, security
// version, an agent config (""=the board's) and a signer (nil=the vendor
// leaf).
func (f *fixture) bundle(t *testing.T, name, version, secver, config string, signer *test.CertKey) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.bundles[name]; ok {
		return b
	}
	if signer == nil {
		signer = &f.upki.Leaf
	}
	out := filepath.Join(workDir, "bundle-"+name)
	args := []string{"image", "build", "--slot-only", "--board", "qemu-arm64", "--hardphone", f.phone, "-o", out, "--offline",
		"--cache", filepath.Join(f.root, ".cache", "hpctl"), "--ca", f.pki.CAFile,
		"--keyring", f.upki.CA.CertFile, "--signer-cert", signer.CertFile, "--signer-key", signer.KeyFile,
		"--user", sipUser, "--version", version, "--security-version", secver}
	if config != "" {
		cfg := filepath.Join(workDir, name+".toml")
		if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
			t.Fatalf("bundle %s: %v", name, err)
		}
		args = append(args, "--config", cfg)
	}
	f.hpctlRun(t, args...)
	f.bundles[name] = filepath.Join(out, "update.raucb")
	return f.bundles[name]
}

// medium makes (once) the update medium for a bundle: an ext4 image with
// update.raucb at its root.
func (f *fixture) medium(t *testing.T, name, bundle string) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if m, ok := f.mediaDone[name]; ok {
		return m
	}
	dir := filepath.Join(workDir, "medium-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("medium: %v", err)
	}
	run(t, "cp", bundle, filepath.Join(dir, "update.raucb"))
	img := filepath.Join(workDir, "medium-"+name+".ext4")
	run(t, "mkfs.ext4", "-q", "-F", "-L", "update", "-d", dir, img, "48M")
	f.mediaDone[name] = img
	return img
}

// configFor is the board's generated agent config with changes, for the
// bundles whose agent must fail.
func configFor(registrar, caFile string) string {
	return fmt.Sprintf(`board = "qemu-arm64"
lockdown_policy = "/etc/hardphone/lockdown.toml"
state_dir = "/data/hardphone"
control_socket = "/run/hardphone/control.sock"
credential_store = "/dev/tpmrm0"

[tls]
ca_file = %q

[media]
local_ip = "10.0.2.15"

[update]
keyring = "/etc/hardphone/keyring.pem"
mark_good_after = "1s"

[[account]]
user = %q
registrar = %q
password_cred = "sip/%s"
retry_base = "1s"
retry_max = "30s"
`, caFile, sipUser, registrar, sipUser)
}

func (f *fixture) hpctlRun(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(f.hpctl, args...)
	cmd.Dir = f.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hpctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("hpctl %s: %s", args[1], bytes.TrimSpace(lastLine(out)))
}

func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func goBuild(t *testing.T, root, out, pkg string, env ...string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s %v: %v\n%s", pkg, env, err, b)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if b, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

// hashRange hashes a byte range of a file (a partition of a disk image).
func hashRange(t *testing.T, path string, off, n int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("hash %s: %v", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		t.Fatalf("hash %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
