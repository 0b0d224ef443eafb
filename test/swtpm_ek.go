package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// swtpmSetupTimeout bounds one swtpm_setup run: it creates an RSA-2048 and
// an ECC P-384 EK and has swtpm_localca certify both, about a second here.
const swtpmSetupTimeout = 2 * time.Minute

// Files swtpm_setup --write-ek-cert-files writes, by EK type.
const (
	ekCertFileRSA2048 = "ek-rsa2048.crt"
	ekCertFileP384    = "ek-secp384r1.crt"
)

// ManufacturerCA is a test TPM manufacturer: a self-signed ECDSA P-256
// root that certifies the endorsement keys of the swtpms started with
// SWTPMWithEK, as a TPM vendor's CA certifies its chips' EKs at the
// factory. Everything it needs (key, certificate, serial counter, the
// swtpm_setup and swtpm_localca configuration) lives in Dir; nothing is
// read from or written to /etc or /var.
type ManufacturerCA struct {
	// Dir holds every file below.
	Dir string
	// CertFile is the PEM root certificate, KeyFile its PKCS#8 PEM key
	// (mode 0600).
	CertFile, KeyFile string
	// Cert is the root certificate; a fleet trusts it as a manufacturer
	// root.
	Cert *x509.Certificate
	// Key is the root's private key, for tests that issue certificates
	// swtpm_localca would not (a non-EK certificate from a trusted
	// manufacturer, say).
	Key *ecdsa.PrivateKey

	setupConf string // swtpm_setup --config file
}

// NewManufacturerCA creates a manufacturer CA in dir (created if needed),
// with a common name that names dir so two CAs of one test differ.
func NewManufacturerCA(t testing.TB, dir string) *ManufacturerCA {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("NewManufacturerCA: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("NewManufacturerCA: %v", err)
	}
	now := time.Now()
	sum := sha256.Sum256([]byte(dir))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject: pkix.Name{
			Organization: []string{"hardphone test TPM manufacturer"},
			CommonName:   fmt.Sprintf("test EK root %x", sum[:4]),
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("NewManufacturerCA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("NewManufacturerCA: %v", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("NewManufacturerCA: %v", err)
	}
	ca := &ManufacturerCA{
		Dir:       dir,
		CertFile:  filepath.Join(dir, "issuercert.pem"),
		KeyFile:   filepath.Join(dir, "signkey.pem"),
		Cert:      cert,
		Key:       key,
		setupConf: filepath.Join(dir, "swtpm_setup.conf"),
	}
	localcaConf := filepath.Join(dir, "swtpm-localca.conf")
	localcaOpts := filepath.Join(dir, "swtpm-localca.options")
	files := []struct {
		path string
		data string
		mode os.FileMode
	}{
		{ca.KeyFile, string(pemBlock("PRIVATE KEY", pkcs8)), 0o600},
		{ca.CertFile, string(pemBlock("CERTIFICATE", der)), 0o644},
		// swtpm_localca reads the last serial it used and writes the next.
		{filepath.Join(dir, "certserial"), "1", 0o644},
		{localcaConf, fmt.Sprintf("statedir = %s\nsigningkey = %s\nissuercert = %s\ncertserial = %s\n",
			dir, ca.KeyFile, ca.CertFile, filepath.Join(dir, "certserial")), 0o644},
		// The platform certificate swtpm_localca makes names a platform.
		{localcaOpts, "--platform-manufacturer hardphone-test\n--platform-version 1.0\n--platform-model testphone\n", 0o644},
		{ca.setupConf, fmt.Sprintf("create_certs_tool = %s\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\nactive_pcr_banks = sha256\n",
			"/usr/bin/swtpm_localca", localcaConf, localcaOpts), 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, []byte(f.data), f.mode); err != nil {
			t.Fatalf("NewManufacturerCA: %v", err)
		}
	}
	return ca
}

// Pool returns a pool holding only this CA's root.
func (ca *ManufacturerCA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// SWTPMWithEK manufactures the TPM before it starts, as a TPM vendor's
// factory does: swtpm_setup creates the TCG default RSA-2048 EK (template
// L-1) and the ECC NIST P-384 EK (template H-3), has ca certify both
// through swtpm_localca, and stores the certificates in the TPM's NV at
// the indices of the TCG EK Credential Profile for TPM Family 2.0
// ("EK Credential NV indices"): 0x01c00002 for RSA-2048 and 0x01c00016 (high
// range) for ECC P-384, plus a platform certificate at 0x01c08000. The
// indices are write-locked afterwards. The DER certificates swtpm_setup
// wrote are in SWTPM.EKCertRSA2048 and SWTPM.EKCertECCP384.
//
// It needs a fresh state: it cannot be combined with SWTPMState.
func SWTPMWithEK(ca *ManufacturerCA) SWTPMOption {
	return func(o *swtpmOptions) error {
		if ca == nil {
			return fmt.Errorf("SWTPMWithEK: nil CA")
		}
		o.ekCA = ca
		return nil
	}
}

// manufacture runs swtpm_setup on the fresh state dir s.StateDir, run and
// waited for here: it starts its own swtpm on a socket pair and stops it
// before it exits, so nothing of it outlives the call.
func (s *SWTPM) manufacture(t testing.TB) {
	t.Helper()
	bin := requireBinary(t, "swtpm_setup")
	requireBinary(t, "swtpm_localca")
	if s.o.stateDir != "" {
		t.Fatalf("StartSWTPM: SWTPMWithEK needs a fresh state, not SWTPMState")
	}
	certDir := filepath.Join(s.runDir, "ekcerts")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		t.Fatalf("StartSWTPM: %v", err)
	}
	logFile := filepath.Join(s.runDir, "swtpm_setup.log")
	ctx, cancel := context.WithTimeout(context.Background(), swtpmSetupTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--tpm2",
		"--tpmstate", s.StateDir,
		"--config", s.o.ekCA.setupConf,
		"--create-ek-cert",
		"--create-platform-cert",
		"--lock-nvram",
		"--write-ek-cert-files", certDir,
		"--logfile", logFile,
	)
	cmd.Dir = s.runDir
	// Its own process group, so a timeout kills the swtpm it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("swtpm_setup: %v\n%s\n%s", err, out, tail(log, 3000))
	}
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{ekCertFileRSA2048, &s.EKCertRSA2048}, {ekCertFileP384, &s.EKCertECCP384}} {
		b, err := os.ReadFile(filepath.Join(certDir, f.name))
		if err != nil {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("swtpm_setup wrote no %s: %v\n%s", f.name, err, tail(log, 3000))
		}
		*f.dst = b
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
