package qemu

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/test"
)

// TestInteractive is `make qemu`: it boots the image `make image` built
// (HARDPHONE_QEMU_IMAGE names its directory) with the serial console on the
// terminal, until the guest powers off or Ctrl-C.
//
// On the first run it plays the factory station for that image, as the
// fixture does for the tests: a TPM state in DIR/tpm with the identity key
// made inside it, a certificate from the image's development SIP CA
// (DIR/pki/sip-ca.*), a sealed SIP password (DIR/sip-password) and floor 1;
// the state file goes onto the disk's data partition. Each run starts
// Kamailio on the namespace's 127.0.0.1:5061 with DIR/pki/registrar.pem,
// which is where QEMU's guest forward for 10.0.2.100:5061 leads.
func TestInteractive(t *testing.T) {
	dir := os.Getenv("HARDPHONE_QEMU_IMAGE")
	if dir == "" {
		t.Skip("make qemu sets HARDPHONE_QEMU_IMAGE")
	}
	var m struct {
		Disk  string `json:"disk"`
		Flash string `json:"uboot_env_flash"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "image.json"))
	if err != nil {
		t.Fatalf("no image in %s (run make image): %v", dir, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("image.json: %v", err)
	}
	pw := provisionImage(t, dir, m.Disk)
	pki := filepath.Join(dir, "pki")
	test.StartKamailio(t, test.KamailioCA(filepath.Join(pki, "sip-ca.pem")),
		test.KamailioCert(filepath.Join(pki, "registrar.pem"), filepath.Join(pki, "registrar.key")),
		test.KamailioUsers(map[string]string{sipUser: pw}), test.KamailioDigestAlgorithm("SHA-256"))
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	vm := test.StartQEMU(t, test.QEMUConfig{Disk: m.Disk, Flash: m.Flash, TPMState: filepath.Join(dir, "tpm"),
		SIPPort: 5061, Dir: run, Echo: os.Stdout})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case <-vm.Done():
	case <-sig:
	}
}

// provisionImage enrols DIR/tpm and writes the state file into the data
// partition of disk, once per image build (image.json newer than the
// password file means `make image` ran again: a new, empty data
// partition); it returns the SIP password.
func provisionImage(t *testing.T, dir, disk string) string {
	pwFile := filepath.Join(dir, "sip-password")
	pst, err := os.Stat(pwFile)
	ist, ierr := os.Stat(filepath.Join(dir, "image.json"))
	switch {
	case err == nil && ierr == nil && !ist.ModTime().After(pst.ModTime()):
		b, err := os.ReadFile(pwFile)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		t.Fatal(err)
	}
	// A TPM from an earlier image holds keys no state file refers to.
	if err := os.RemoveAll(filepath.Join(dir, "tpm")); err != nil {
		t.Fatal(err)
	}
	tpmDir := filepath.Join(dir, "tpm")
	raw := make([]byte, 12)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	pw := hex.EncodeToString(raw)
	data := filepath.Join(t.TempDir(), "data")
	provisionTPM(t, tpmDir, filepath.Join(data, "hardphone"), pw, func(csr []byte) []byte {
		return signCSR(t, filepath.Join(dir, "pki"), csr)
	})
	writeDataPartition(t, disk, data)
	if err := os.WriteFile(pwFile, []byte(pw), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("provisioned %s: identity key in the TPM, certificate from %s/pki/sip-ca.pem, password in %s", tpmDir, dir, pwFile)
	return pw
}

// signCSR issues a client certificate for the CSR from the image's
// development SIP CA.
func signCSR(t *testing.T, pki string, der []byte) []byte {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil || csr.CheckSignature() != nil {
		t.Fatalf("CSR: %v", err)
	}
	caCert, caKey := readCA(t, filepath.Join(pki, "sip-ca.pem"), filepath.Join(pki, "sip-ca.key"))
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: csr.Subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, csr.PublicKey, caKey)
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	return cert
}

func readCA(t *testing.T, certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cblk, _ := pem.Decode(cb)
	kblk, _ := pem.Decode(kb)
	if cblk == nil || kblk == nil {
		t.Fatalf("%s or %s is not PEM", certFile, keyFile)
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kblk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("%s: not an ECDSA key", keyFile)
	}
	return cert, key
}

// writeDataPartition makes an ext4 filesystem of dir's contents and writes
// it over the disk's data partition.
func writeDataPartition(t *testing.T, disk, dir string) {
	b, err := board.Lookup("qemu-arm64")
	if err != nil {
		t.Fatal(err)
	}
	p := b.Disk.ByRole(board.RoleData)[0]
	start, err := b.Disk.Start(p.Number)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "data.ext4")
	run(t, "mkfs.ext4", "-q", "-F", "-L", p.Name, "-E", "root_owner=0:0", "-d", dir, img, itoa(p.SizeMiB)+"M")
	run(t, "dd", "if="+img, "of="+disk, "bs=1M", "seek="+itoa(int(start/board.MiB)), "conv=notrunc,sparse", "status=none")
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }
