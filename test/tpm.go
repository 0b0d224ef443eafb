package test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// swtpmReadyTimeout bounds the wait for a started swtpm to answer.
const swtpmReadyTimeout = 10 * time.Second

// SWTPM is a software TPM 2.0 (swtpm) started by StartSWTPM and stopped by
// PID when the test ends. It starts with TPM2_Startup(CLEAR) already done
// (--flags not-need-init,startup-clear), so clients need no init.
type SWTPM struct {
	// StateDir holds the TPM's persistent state (seeds, NV indices). A
	// second SWTPM started on the same StateDir is the same TPM.
	StateDir string
	// Socket is the unix socket of the command channel (SWTPMTCP: empty).
	Socket string
	// Spec names this TPM for hal/tpm.Open: "swtpm:unix:SOCKET", or
	// "swtpm:tcp:127.0.0.1:PORT" with SWTPMTCP.
	Spec string
	// EKCertRSA2048, EKCertECCP256 and EKCertECCP384 are the DER EK
	// certificates SWTPMWithEK had its CA issue and stored in NV; nil
	// without it.
	EKCertRSA2048, EKCertECCP256, EKCertECCP384 []byte

	o      swtpmOptions
	runDir string
	port   int // TCP command port; 0 for a unix socket
	proc   *process
}

type swtpmOptions struct {
	stateDir string // "" means a fresh one
	tcp      bool
	ekCA     *ManufacturerCA // nil: no EK certificates (SWTPMWithEK)
}

// SWTPMOption configures StartSWTPM.
type SWTPMOption func(*swtpmOptions) error

// SWTPMState starts the TPM on an existing state directory (for instance
// another SWTPM's StateDir) instead of a fresh one, which is the default:
// the same TPM seen by a second swtpm process.
func SWTPMState(dir string) SWTPMOption {
	return func(o *swtpmOptions) error {
		st, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("swtpm state dir: %w", err)
		}
		if !st.IsDir() {
			return fmt.Errorf("swtpm state dir %s is not a directory", dir)
		}
		o.stateDir = dir
		return nil
	}
}

// SWTPMTCP serves the command channel over TCP on 127.0.0.1 instead of a
// unix socket. It needs the private network namespace of RunInNetns.
func SWTPMTCP() SWTPMOption {
	return func(o *swtpmOptions) error {
		o.tcp = true
		return nil
	}
}

// StartSWTPM starts swtpm, by default on a fresh state, and waits until it
// answers TPM2_GetRandom. It skips the test when swtpm is not installed, or
// fails it under CI=true.
func StartSWTPM(t testing.TB, opts ...SWTPMOption) *SWTPM {
	t.Helper()
	var o swtpmOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			t.Fatalf("StartSWTPM: %v", err)
		}
	}
	bin := requireBinary(t, "swtpm")
	if o.tcp {
		requireNetns(t)
	}
	// A unix socket path must fit in sun_path (108 bytes); t.TempDir()
	// paths carry the test name and may not.
	runDir, err := os.MkdirTemp("", "swtpm-")
	if err != nil {
		t.Fatalf("StartSWTPM: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	s := &SWTPM{o: o, runDir: runDir, StateDir: o.stateDir}
	if s.StateDir == "" {
		s.StateDir = filepath.Join(t.TempDir(), "swtpm-state")
		if err := os.Mkdir(s.StateDir, 0o700); err != nil {
			t.Fatalf("StartSWTPM: %v", err)
		}
	}
	if o.tcp {
		s.port = freePort(t, "127.0.0.1", 2)
		s.Spec = "swtpm:tcp:" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	} else {
		s.Socket = filepath.Join(runDir, "tpm.sock")
		s.Spec = "swtpm:unix:" + s.Socket
	}
	if o.ekCA != nil {
		s.manufacture(t)
	}
	s.start(t, bin)
	// Stop whichever process is current when the test ends, in the order
	// of StartSWTPM: after anything opened on the TPM later has closed.
	t.Cleanup(func() { s.proc.stop(t) })
	if o.ekCA != nil {
		s.provisionP256EK(t)
	}
	return s
}

// noCleanup passes everything through to the test but drops Cleanup, for
// processes started by Restart: the cleanup StartSWTPM registered stops
// them, in the right order.
type noCleanup struct{ testing.TB }

func (noCleanup) Cleanup(func()) {}

func (s *SWTPM) start(t testing.TB, bin string) {
	t.Helper()
	args := []string{"socket", "--tpm2",
		"--flags", "not-need-init,startup-clear",
		"--tpmstate", "dir=" + s.StateDir,
	}
	if s.o.tcp {
		args = append(args,
			"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", s.port),
			"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", s.port+1))
	} else {
		// A socket left by the previous run would make bind fail.
		for _, p := range []string{s.Socket, s.Socket + ".ctrl"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("StartSWTPM: %v", err)
			}
		}
		args = append(args,
			"--server", "type=unixio,path="+s.Socket,
			"--ctrl", "type=unixio,path="+s.Socket+".ctrl")
	}
	s.proc = startProcess(t, filepath.Join(s.runDir, "swtpm.log"), s.runDir, bin, args...)
	if err := s.proc.waitFor(swtpmReadyTimeout, s.probe); err != nil {
		t.Fatalf("swtpm not ready: %v\n%s", err, s.proc.logTail(2000))
	}
}

// getRandom8 is TPM2_GetRandom(bytesRequested=8) with no sessions:
// tag TPM_ST_NO_SESSIONS, size 12, TPM_CC_GetRandom (TPM 2.0 Part 3 §16.1).
var getRandom8 = []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8}

// probe sends TPM2_GetRandom and wants TPM_RC_SUCCESS back.
func (s *SWTPM) probe() error {
	network, addr := "unix", s.Socket
	if s.o.tcp {
		network, addr = "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	}
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write(getRandom8); err != nil {
		return err
	}
	var hdr [10]byte
	if _, err := c.Read(hdr[:]); err != nil {
		return err
	}
	if !bytes.Equal(hdr[:2], []byte{0x80, 0x01}) {
		return permanentError{fmt.Errorf("swtpm answered tag %x, want 8001", hdr[:2])}
	}
	if rc := binary.BigEndian.Uint32(hdr[6:10]); rc != 0 {
		return fmt.Errorf("swtpm answered TPM2_GetRandom with rc 0x%x", rc)
	}
	return nil
}

// PID is the swtpm process ID.
func (s *SWTPM) PID() int { return s.proc.pid() }

// LogTail returns the end of swtpm's log, for failure messages.
func (s *SWTPM) LogTail() string { return s.proc.logTail(2000) }

// Restart power-cycles the TPM: it stops swtpm and starts it again on the
// same state and socket. NV (counters, seeds) survives; PCRs are reset and
// every transient object and session is gone, as after a reboot.
func (s *SWTPM) Restart(t testing.TB) {
	t.Helper()
	s.proc.stop(t)
	s.start(noCleanup{t}, requireBinary(t, "swtpm"))
}

// Stop stops swtpm now rather than at cleanup.
func (s *SWTPM) Stop(t testing.TB) { s.proc.stop(t) }

// ClientForCSR issues a TLS client certificate from the trusted CA for the
// key and subject of a DER certificate request (its signature checked
// first) and returns the PEM file, so a test can enrol a key that never
// leaves a TPM.
func (p *PKI) ClientForCSR(csrDER []byte) (certFile string) {
	p.t.Helper()
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		p.t.Fatalf("PKI: parse CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		p.t.Fatalf("PKI: CSR signature: %v", err)
	}
	tmpl := clientTemplate(csr.Subject.CommonName)
	tmpl.Subject = csr.Subject
	tmpl.DNSNames = csr.DNSNames
	p.fillValidity(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca.cert, csr.PublicKey, p.ca.key)
	if err != nil {
		p.t.Fatalf("PKI: issue for CSR %q: %v", csr.Subject, err)
	}
	certFile = filepath.Join(p.Dir, "csr-client-"+fileSafe(csr.Subject.CommonName)+".pem")
	p.write(certFile, pemBlock("CERTIFICATE", der), 0o644)
	return certFile
}

// Enroller is what EnrolIdentity needs from a credential store; the
// *crypto/credstore.Store (and system.Credentials) has it.
type Enroller interface {
	CreateIdentity(replace bool) error
	CreateCSR(tmpl *x509.CertificateRequest) ([]byte, error)
	ImportCertificate(chain [][]byte) error
}

// EnrolIdentity gives a credential store a device identity the trusted CA
// vouches for: it creates the identity key (in the TPM, for a TPM store),
// has the CA issue a client certificate with CN=cn for the key's CSR, and
// imports it. After it, the store's Identity() is a tls.Certificate Kamailio
// accepts.
func (p *PKI) EnrolIdentity(e Enroller, cn string) {
	p.t.Helper()
	if err := e.CreateIdentity(false); err != nil {
		p.t.Fatalf("EnrolIdentity: %v", err)
	}
	csr, err := e.CreateCSR(&x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}})
	if err != nil {
		p.t.Fatalf("EnrolIdentity: %v", err)
	}
	b, err := os.ReadFile(p.ClientForCSR(csr))
	if err != nil {
		p.t.Fatalf("EnrolIdentity: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		p.t.Fatalf("EnrolIdentity: issued certificate is not PEM")
	}
	if err := e.ImportCertificate([][]byte{blk.Bytes}); err != nil {
		p.t.Fatalf("EnrolIdentity: %v", err)
	}
}
