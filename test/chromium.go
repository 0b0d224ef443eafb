package test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromiumReadyTimeout bounds the wait for a started Chromium to answer on
// its DevTools port.
const chromiumReadyTimeout = 30 * time.Second

// Chromium is a headless Chromium started by StartChromium, driven over the
// Chrome DevTools Protocol (chromedp's remote allocator) and stopped by PID
// when the test ends.
type Chromium struct {
	// DevToolsURL is the browser's DevTools websocket
	// ("ws://127.0.0.1:PORT/devtools/browser/ID").
	DevToolsURL string
	// DataDir is the browser's throwaway profile.
	DataDir string

	proc *process
}

// ChromiumOptions says what the browser trusts and where names resolve.
type ChromiumOptions struct {
	// Hosts maps DNS names to loopback addresses, for origins that need a
	// name (WebAuthn refuses IP origins): {"console.test": "127.0.0.1"}.
	Hosts map[string]string
	// TrustLeaves are server certificates the browser accepts as valid
	// although no root it knows issued them (by their public keys, with
	// --ignore-certificate-errors-spki-list): the test CA's leaves.
	TrustLeaves []*x509.Certificate
}

// StartChromium runs Debian's chromium headless on a private profile,
// listening for DevTools on a free loopback port, and waits until
// /json/version answers. It skips (fails under CI=true) when chromium is not
// installed. Run it inside test.RunInNetns: the browser then reaches nothing
// but the test's loopback.
func StartChromium(t testing.TB, o ChromiumOptions) *Chromium {
	t.Helper()
	bin := requireBinary(t, "chromium")
	runDir := t.TempDir()
	data := filepath.Join(runDir, "profile")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatalf("StartChromium: %v", err)
	}
	port := freePort(t, "127.0.0.1", 1)
	args := []string{
		"--headless=new",
		// The sandbox needs user namespaces or a setuid helper that a
		// root test process in a container does not have.
		"--no-sandbox",
		"--disable-gpu",
		"--disable-dev-shm-usage",
		"--no-first-run",
		"--no-default-browser-check",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--disable-extensions",
		"--disable-default-apps",
		"--metrics-recording-only",
		"--password-store=basic",
		"--use-mock-keychain",
		"--remote-debugging-address=127.0.0.1",
		"--remote-debugging-port=" + strconv.Itoa(port),
		"--user-data-dir=" + data,
		"--window-size=1280,900",
	}
	if len(o.Hosts) > 0 {
		var rules []string
		for name, addr := range o.Hosts {
			rules = append(rules, "MAP "+name+" "+addr)
		}
		// Everything else resolves nowhere.
		rules = append(rules, "MAP * ~NOTFOUND")
		args = append(args, "--host-resolver-rules="+strings.Join(rules, ", "))
	}
	if len(o.TrustLeaves) > 0 {
		var spkis []string
		for _, c := range o.TrustLeaves {
			h := sha256.Sum256(c.RawSubjectPublicKeyInfo)
			spkis = append(spkis, base64.StdEncoding.EncodeToString(h[:]))
		}
		args = append(args, "--ignore-certificate-errors-spki-list="+strings.Join(spkis, ","))
	}
	args = append(args, "about:blank")
	proc := startProcess(t, filepath.Join(runDir, "chromium.log"), runDir, bin, args...)
	c := &Chromium{DataDir: data, proc: proc}
	versionURL := fmt.Sprintf("http://127.0.0.1:%d/json/version", port)
	hc := &http.Client{Timeout: 2 * time.Second}
	err := proc.waitFor(chromiumReadyTimeout, func() error {
		resp, err := hc.Get(versionURL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", versionURL, resp.Status)
		}
		var v struct {
			WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
		}
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&v); err != nil {
			return permanentError{fmt.Errorf("%s: %w", versionURL, err)}
		}
		if v.WebSocketDebuggerURL == "" {
			return errors.New("no webSocketDebuggerUrl yet")
		}
		c.DevToolsURL = v.WebSocketDebuggerURL
		return nil
	})
	if err != nil {
		t.Fatalf("StartChromium: %v\n--- log tail ---\n%s", err, proc.logTail(3000))
	}
	return c
}

// PID is the browser's process ID.
func (c *Chromium) PID() int { return c.proc.pid() }

// LogTail returns the end of the browser's stderr, for failure messages.
func (c *Chromium) LogTail() string { return c.proc.logTail(4000) }
