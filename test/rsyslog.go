package test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rsyslogReadyTimeout bounds the wait for a started rsyslogd to accept a
// TLS connection.
const rsyslogReadyTimeout = 20 * time.Second

// rsyslogProbeCN is the client certificate name of the readiness probe.
const rsyslogProbeCN = "rsyslog-probe"

// Rsyslog is Debian's rsyslogd as an RFC 5425 collector: imtcp with the
// GnuTLS stream driver in TLS-only mode (StreamDriver.Mode 1), requiring a
// client certificate from the PKI's CA whose name is one of the permitted
// peers (AuthMode x509/name), octet-counted framing. Every message it
// receives is written, as rsyslog parsed it, in RFC 5424 form
// (RSYSLOG_SyslogProtocol23Format) one per line to OutFile. It runs from a
// private config and work directory (no system config is read) and is
// stopped by PID when the test ends.
type Rsyslog struct {
	// Addr is the TLS listener, 127.0.0.1:PORT.
	Addr string
	// ServerName is the name the server certificate carries ("127.0.0.1").
	ServerName string
	// Roots trusts the PKI's CA, for clients.
	Roots *x509.CertPool
	// OutFile receives the messages.
	OutFile string

	dir, conf, pidFile string
	probe              tls.Certificate
	proc               *process
}

// StartRsyslog starts rsyslogd on a free port of 127.0.0.1 with a server
// certificate from pki, accepting clients whose certificate pki issued for
// one of permitted (a CN or DNS SAN). It needs the private network
// namespace of RunInNetns, and skips (fails under CI=true) when rsyslogd or
// its GnuTLS driver is not installed.
func StartRsyslog(t testing.TB, pki *PKI, permitted ...string) *Rsyslog {
	t.Helper()
	bin := requireBinary(t, "rsyslogd")
	requireNetns(t)
	if len(permitted) == 0 {
		t.Fatalf("StartRsyslog: no permitted client names")
	}
	if !rsyslogHasGTLS() {
		missing(t, "rsyslog's GnuTLS stream driver (Debian package rsyslog-gnutls) is not installed")
	}
	// rsyslog's unix paths (pid file) stay short outside t.TempDir.
	dir, err := os.MkdirTemp("", "rsyslog-")
	if err != nil {
		t.Fatalf("StartRsyslog: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	certFile, keyFile := pki.Server("127.0.0.1")
	probeCert, probeKey, _ := pki.Client(rsyslogProbeCN)
	probe, err := tls.LoadX509KeyPair(probeCert, probeKey)
	if err != nil {
		t.Fatalf("StartRsyslog: probe certificate: %v", err)
	}
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatalf("StartRsyslog: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("StartRsyslog: no certificate in %s", pki.CAFile)
	}
	port := freePort(t, "127.0.0.1", 1)
	r := &Rsyslog{
		Addr:       net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		ServerName: "127.0.0.1",
		Roots:      roots,
		OutFile:    filepath.Join(dir, "received.log"),
		dir:        dir,
		conf:       filepath.Join(dir, "rsyslog.conf"),
		pidFile:    filepath.Join(dir, "rsyslogd.pid"),
		probe:      probe,
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatalf("StartRsyslog: %v", err)
	}
	peers := append([]string{rsyslogProbeCN}, permitted...)
	quoted := make([]string, len(peers))
	for i, p := range peers {
		quoted[i] = strconv.Quote(p)
	}
	conf := fmt.Sprintf(`# Private config written by test.StartRsyslog.
global(
  workDirectory=%q
  maxMessageSize="8k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%q
  defaultNetstreamDriverCertFile=%q
  defaultNetstreamDriverKeyFile=%q
)
module(load="imtcp"
  streamDriver.name="gtls"
  streamDriver.mode="1"
  streamDriver.authMode="x509/name"
  permittedPeer=[%s]
)
input(type="imtcp" address="127.0.0.1" port="%d" ruleset="collect")
ruleset(name="collect") {
  action(type="omfile" file=%q template="RSYSLOG_SyslogProtocol23Format")
}
`, work, pki.CAFile, certFile, keyFile, strings.Join(quoted, ", "), port, r.OutFile)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatalf("StartRsyslog: %v", err)
	}
	// Check the config first: a mistake then fails with rsyslog's own words.
	if out, err := exec.Command(bin, "-N1", "-f", r.conf).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1 refuses the config: %v\n%s\n%s", err, out, conf)
	}
	r.start(t, bin)
	t.Cleanup(func() { r.proc.stop(t) })
	return r
}

func rsyslogHasGTLS() bool {
	for _, dir := range []string{"/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/aarch64-linux-gnu/rsyslog", "/usr/lib/arm-linux-gnueabihf/rsyslog", "/usr/lib/rsyslog"} {
		if _, err := os.Stat(filepath.Join(dir, "lmnsd_gtls.so")); err == nil {
			return true
		}
	}
	return false
}

func (r *Rsyslog) start(t testing.TB, bin string) {
	t.Helper()
	// A pid file left by the previous run makes rsyslogd refuse to start.
	os.Remove(r.pidFile)
	r.proc = startProcess(t, filepath.Join(r.dir, "rsyslogd.log"), r.dir, bin, "-n", "-f", r.conf, "-i", r.pidFile)
	if err := r.proc.waitFor(rsyslogReadyTimeout, r.ready); err != nil {
		t.Fatalf("rsyslogd not ready: %v\n%s", err, r.proc.logTail(3000))
	}
}

// ready is the readiness probe: a complete TLS handshake with the probe's
// client certificate.
func (r *Rsyslog) ready() error {
	d := net.Dialer{Timeout: time.Second}
	c, err := tls.DialWithDialer(&d, "tcp", r.Addr, &tls.Config{
		RootCAs: r.Roots, ServerName: r.ServerName, Certificates: []tls.Certificate{r.probe},
	})
	if err != nil {
		return err
	}
	return c.Close()
}

// Stop stops rsyslogd by PID (the collector outage of a test); Restart
// starts it again on the same port, config and output file.
func (r *Rsyslog) Stop(t testing.TB) {
	t.Helper()
	r.proc.stop(t)
}

// Restart starts a stopped rsyslogd again. The cleanup StartRsyslog
// registered stops the new process.
func (r *Rsyslog) Restart(t testing.TB) {
	t.Helper()
	if ok, _ := r.proc.exited(); !ok {
		t.Fatalf("Rsyslog.Restart: rsyslogd pid %d still running", r.proc.pid())
	}
	r.start(noCleanup{t}, requireBinary(t, "rsyslogd"))
}

// PID is rsyslogd's process ID.
func (r *Rsyslog) PID() int { return r.proc.pid() }

// LogTail returns the end of rsyslogd's own log, for failure messages.
func (r *Rsyslog) LogTail() string { return r.proc.logTail(3000) }

// Lines returns the messages received so far, one per line, without the
// line ends. A line still being written (no newline yet) is left out.
func (r *Rsyslog) Lines(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(r.OutFile)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("read %s: %v", r.OutFile, err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// WaitLines polls OutFile until done(lines) holds or timeout passes, and
// returns the lines.
func (r *Rsyslog) WaitLines(t testing.TB, timeout time.Duration, done func([]string) bool) []string {
	t.Helper()
	var lines []string
	err := r.proc.waitFor(timeout, func() error {
		lines = r.Lines(t)
		if done(lines) {
			return nil
		}
		return fmt.Errorf("%d lines received so far", len(lines))
	})
	if err != nil {
		t.Fatalf("rsyslog output: %v\n--- rsyslogd log ---\n%s", err, r.LogTail())
	}
	return lines
}
