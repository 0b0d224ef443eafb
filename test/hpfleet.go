package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hpfleetReadyTimeout bounds the wait for a started hpfleet to answer
// /v1/health (PostgreSQL migrations included).
const hpfleetReadyTimeout = 30 * time.Second

// HPFleet is an `hpfleet serve` process started by StartHPFleet on
// loopback, stopped by PID when the test ends.
type HPFleet struct {
	// Addr is "127.0.0.1:PORT", URL "https://127.0.0.1:PORT".
	Addr, URL string

	bin    string
	args   []string
	runDir string
	roots  *x509.CertPool
	name   string
	proc   *process
	starts int
}

// BuildHPFleet builds cmd/hpfleet into a temporary directory and returns
// the binary's path.
func BuildHPFleet(t testing.TB) string {
	t.Helper()
	root := findModuleRoot(t)
	out := filepath.Join(t.TempDir(), "hpfleet")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/hpfleet")
	cmd.Dir = root
	cmd.Env = append(HostBuildEnv(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("BuildHPFleet: go build: %v\n%s", err, b)
	}
	return out
}

// HostBuildEnv is the environment for building a helper program a test
// executes: the machine's own architecture, whatever GOARCH the test
// itself was built for. The ARM unit tests run under qemu-user without
// binfmt_misc, where a child built for arm64 or arm cannot be started
// ("exec format error"); the code under test still runs emulated, the
// programs it talks to run natively.
func HostBuildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GOARCH=") || strings.HasPrefix(kv, "GOARM=") {
			continue
		}
		env = append(env, kv)
	}
	if host, err := exec.Command("go", "env", "GOHOSTARCH").Output(); err == nil {
		env = append(env, "GOARCH="+strings.TrimSpace(string(host)))
	}
	return env
}

// StartHPFleet runs `bin serve ARGS --listen 127.0.0.1:PORT` on a free
// port and waits until GET /v1/health answers over TLS with a certificate
// from serverCAFile for serverName. args hold everything else (--data or
// --postgres, --ca-dir, --manufacturer-ca ...).
func StartHPFleet(t testing.TB, bin, serverCAFile, serverName string, args ...string) *HPFleet {
	t.Helper()
	b, err := os.ReadFile(serverCAFile)
	if err != nil {
		t.Fatalf("StartHPFleet: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		t.Fatalf("StartHPFleet: no certificate in %s", serverCAFile)
	}
	runDir, err := os.MkdirTemp("", "hpfleet-")
	if err != nil {
		t.Fatalf("StartHPFleet: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	port := freePort(t, "127.0.0.1", 1)
	h := &HPFleet{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), bin: bin, runDir: runDir, roots: roots, name: serverName}
	h.URL = "https://" + h.Addr
	h.args = append([]string{"serve", "--listen", h.Addr}, args...)
	h.start(t)
	t.Cleanup(func() { h.proc.stop(t) })
	return h
}

func (h *HPFleet) start(t testing.TB) {
	t.Helper()
	h.starts++
	h.proc = startProcess(t, filepath.Join(h.runDir, fmt.Sprintf("hpfleet-%d.log", h.starts)), h.runDir, h.bin, h.args...)
	h.proc.name = "hpfleet"
	if err := h.proc.waitFor(hpfleetReadyTimeout, h.probe); err != nil {
		t.Fatalf("hpfleet not ready: %v\n%s", err, h.LogTail())
	}
}

func (h *HPFleet) probe() error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: h.roots, ServerName: h.name, MinVersion: tls.VersionTLS12}}}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/v1/health", nil)
	if err != nil {
		return permanentError{err}
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256)) // for the message only
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %d %s", resp.StatusCode, body)
	}
	return nil
}

// PID is the server's process ID.
func (h *HPFleet) PID() int { return h.proc.pid() }

// LogTail returns the end of the current process's log (JSON lines).
func (h *HPFleet) LogTail() string { return h.proc.logTail(4000) }

// Log returns the whole log of every run so far.
func (h *HPFleet) Log() string {
	var all []byte
	for i := 1; i <= h.starts; i++ {
		b, _ := os.ReadFile(filepath.Join(h.runDir, fmt.Sprintf("hpfleet-%d.log", i))) // a missing run has no log
		all = append(all, b...)
	}
	return string(all)
}

// Kill ends the server with SIGKILL: no graceful stop, requests under way
// cut off, as a crash or a power cut would.
func (h *HPFleet) Kill(t testing.TB) {
	t.Helper()
	// ESRCH only means it is already gone.
	_ = syscall.Kill(h.proc.pid(), syscall.SIGKILL)
	<-h.proc.done
}

// Restart starts the server again with the same arguments (after Kill or
// Stop).
func (h *HPFleet) Restart(t testing.TB) {
	t.Helper()
	if ok, _ := h.proc.exited(); !ok {
		h.proc.stop(t)
	}
	h.start(noCleanup{t})
}

// Stop stops the server (SIGTERM, graceful) now rather than at cleanup.
func (h *HPFleet) Stop(t testing.TB) { h.proc.stop(t) }

// findModuleRoot finds the directory of go.mod above the working
// directory.
func findModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("Getwd: %v", err)
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

// PEMCertificate encodes a DER certificate as PEM.
func PEMCertificate(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
