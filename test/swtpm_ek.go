package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
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

// SWTPMWithEK manufactures the TPM, as a TPM vendor's factory does, with
// the EKs and certificates of the TCG EK Credential Profile for TPM Family
// 2.0 (its EK templates and "EK Credential NV indices"), all certified by
// ca through swtpm_localca:
//
//   - before swtpm starts, swtpm_setup creates the RSA-2048 EK (template
//     L-1, persisted at 0x81010001) and the ECC NIST P-384 EK (template
//     H-3, persisted at 0x81010016) and stores their certificates at NV
//     0x01c00002 (low range) and 0x01c00016 (high range), plus a platform
//     certificate at 0x01c08000, write-locked;
//   - once it runs, the ECC NIST P-256 EK (template L-2, which swtpm_setup
//     0.7 does not make) is derived here, certified the same way and stored
//     at NV 0x01c0000a (low range) with the platform's authorization,
//     write-locked, and not persisted: a client must derive it.
//
// The DER certificates are in SWTPM.EKCertRSA2048, EKCertECCP256 and
// EKCertECCP384.
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

// ECC P-256 EK certificate index and NV attributes, as swtpm_setup gives
// its own EK certificate indices: written and read by the platform, read
// by the owner or with the (empty) index auth, locked until the index is
// deleted (TCG EK Credential Profile, "EK Credential NV indices").
const nvIndexECCP256EKCert = 0x01c0000a

// provisionP256EK derives the L-2 EK of the running TPM, has the CA
// certify it and stores the certificate in NV.
func (s *SWTPM) provisionP256EK(t testing.TB) {
	t.Helper()
	tr := swtpmConn{s}
	platform := tpm2.AuthHandle{Handle: tpm2.TPMRHPlatform, Auth: tpm2.PasswordAuth(nil)}
	ek, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCEKTemplate),
	}.Execute(tr)
	if err != nil {
		t.Fatalf("provision P-256 EK: create: %v", err)
	}
	if _, err := (tpm2.FlushContext{FlushHandle: ek.ObjectHandle}).Execute(tr); err != nil {
		t.Fatalf("provision P-256 EK: flush: %v", err)
	}
	pub, err := ek.OutPublic.Contents()
	if err != nil {
		t.Fatalf("provision P-256 EK: %v", err)
	}
	pt, err := pub.Unique.ECC()
	if err != nil {
		t.Fatalf("provision P-256 EK: %v", err)
	}
	cert := s.o.ekCA.certifyECCEK(t, s.runDir, pt.X.Buffer, pt.Y.Buffer)

	idx := tpm2.TPMHandle(nvIndexECCP256EKCert)
	if _, err := (tpm2.NVDefineSpace{
		AuthHandle: platform,
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
			NVIndex: idx,
			NameAlg: tpm2.TPMAlgSHA256,
			Attributes: tpm2.TPMANV{
				PPWrite: true, WriteDefine: true, PPRead: true, OwnerRead: true,
				AuthRead: true, NoDA: true, PlatformCreate: true, NT: tpm2.TPMNTOrdinary,
			},
			DataSize: uint16(len(cert)),
		}),
	}).Execute(tr); err != nil {
		t.Fatalf("provision P-256 EK: define NV 0x%08x: %v", uint32(idx), err)
	}
	// The index's Name changes once written, so it is read before each use.
	named := func() tpm2.NamedHandle {
		rsp, err := tpm2.NVReadPublic{NVIndex: idx}.Execute(tr)
		if err != nil {
			t.Fatalf("provision P-256 EK: read NV public: %v", err)
		}
		return tpm2.NamedHandle{Handle: idx, Name: rsp.NVName}
	}
	const chunk = 512
	for off := 0; off < len(cert); off += chunk {
		if _, err := (tpm2.NVWrite{
			AuthHandle: platform,
			NVIndex:    named(),
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: cert[off:min(off+chunk, len(cert))]},
			Offset:     uint16(off),
		}).Execute(tr); err != nil {
			t.Fatalf("provision P-256 EK: write NV at %d: %v", off, err)
		}
	}
	if _, err := (tpm2.NVWriteLock{AuthHandle: platform, NVIndex: named()}).Execute(tr); err != nil {
		t.Fatalf("provision P-256 EK: lock NV: %v", err)
	}
	s.EKCertECCP256 = cert
}

// certifyECCEK has swtpm_localca issue an EK certificate for the P-256
// point (x, y), with the TPM description swtpm_setup gives swtpm's EKs.
func (ca *ManufacturerCA) certifyECCEK(t testing.TB, runDir string, x, y []byte) []byte {
	t.Helper()
	bin := requireBinary(t, "swtpm_localca")
	dir, err := os.MkdirTemp(runDir, "p256ek-")
	if err != nil {
		t.Fatalf("certify P-256 EK: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), swtpmSetupTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin,
		"--type", "ek",
		"--ek", fmt.Sprintf("x=%x,y=%x,id=secp256r1", x, y),
		"--dir", dir,
		"--configfile", filepath.Join(ca.Dir, "swtpm-localca.conf"),
		"--optsfile", filepath.Join(ca.Dir, "swtpm-localca.options"),
		"--logfile", filepath.Join(dir, "localca.log"),
		"--tpm2",
		"--tpm-spec-family", "2.0", "--tpm-spec-level", "0", "--tpm-spec-revision", "164",
		"--tpm-manufacturer", "id:00001014", "--tpm-model", "swtpm", "--tpm-version", "id:20191023",
	).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "localca.log"))
		t.Fatalf("swtpm_localca: %v\n%s\n%s", err, out, tail(log, 3000))
	}
	cert, err := os.ReadFile(filepath.Join(dir, "ek.cert"))
	if err != nil {
		t.Fatalf("swtpm_localca wrote no ek.cert: %v", err)
	}
	return cert
}

// swtpmConn sends raw TPM commands to the swtpm, one connection each, for
// the harness's own provisioning.
type swtpmConn struct{ s *SWTPM }

func (c swtpmConn) Send(cmd []byte) ([]byte, error) {
	network, addr := "unix", c.s.Socket
	if c.s.o.tcp {
		network, addr = "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.s.port))
	}
	conn, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		return nil, err
	}
	if _, err := conn.Write(cmd); err != nil {
		return nil, err
	}
	var hdr [10]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[2:6])
	if n < 10 || n > 64<<10 {
		return nil, fmt.Errorf("swtpm response size %d", n)
	}
	rsp := make([]byte, n)
	copy(rsp, hdr[:])
	if _, err := io.ReadFull(conn, rsp[10:]); err != nil {
		return nil, err
	}
	return rsp, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
