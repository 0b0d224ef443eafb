package test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// staticNginxReadyTimeout bounds the wait for a started nginx to answer HTTP.
const staticNginxReadyTimeout = 20 * time.Second

// StaticNginx is Debian's nginx serving a directory as static files on
// 127.0.0.1, from a private config and prefix (no system config is read),
// stopped by PID when the test ends. The fleet's repositories are served
// this way in the tests: the phone trusts signatures, not servers.
type StaticNginx struct {
	// URL is http://127.0.0.1:PORT (no trailing slash).
	URL string
	// Root is the document root: files the test puts there are served at
	// URL + "/" + their path. It is world-readable so that nginx's worker
	// (nobody, when the test runs as root) reads it.
	Root string
	// AccessLog is nginx's access log: one line per request,
	// "METHOD URI STATUS BYTES_SENT".
	AccessLog string

	dir  string
	proc *process
}

// StartStaticNginx starts nginx on a free port of 127.0.0.1 serving a new empty
// document root. It skips (fails under CI=true) when nginx is not
// installed.
func StartStaticNginx(t testing.TB) *StaticNginx {
	t.Helper()
	bin := requireBinary(t, "nginx")
	// 0755 from the top: the worker runs as nobody when we are root.
	dir, err := os.MkdirTemp("", "nginx-")
	if err != nil {
		t.Fatalf("StartStaticNginx: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("StartStaticNginx: %v", err)
	}
	n := &StaticNginx{Root: filepath.Join(dir, "www"), AccessLog: filepath.Join(dir, "access.log"), dir: dir}
	for _, d := range []string{n.Root, filepath.Join(dir, "tmp")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("StartStaticNginx: %v", err)
		}
	}
	userLine := ""
	if os.Geteuid() == 0 {
		group := "nogroup"
		if _, err := user.LookupGroup(group); err != nil {
			group = "nobody"
		}
		if _, err := user.Lookup("nobody"); err != nil {
			missing(t, "user nobody for nginx's worker: %v", err)
		}
		userLine = "user nobody " + group + ";"
	}
	// Another process on the machine may take the port between our check
	// and nginx's bind: try a few.
	var lastErr error
	for try := 0; try < 5; try++ {
		port := freePort(t, "127.0.0.1", 1)
		conf := filepath.Join(dir, "nginx.conf")
		tmp := filepath.Join(dir, "tmp")
		cfg := fmt.Sprintf(`# Private config written by test.StartStaticNginx.
%s
worker_processes 1;
pid %s;
error_log %s warn;
daemon off;
events { worker_connections 256; }
http {
    log_format hp '$request_method $request_uri $status $bytes_sent';
    access_log %s hp;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    default_type application/octet-stream;
    types { application/json json; }
    sendfile on;
    keepalive_timeout 60;
    keepalive_requests 1000000;
    server_tokens off;
    server {
        listen 127.0.0.1:%d;
        root %s;
        location / { }
    }
}
`, userLine, filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"), n.AccessLog, tmp, tmp, tmp, tmp, tmp, port, n.Root)
		if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
			t.Fatalf("StartStaticNginx: %v", err)
		}
		if out, err := exec.Command(bin, "-t", "-q", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")).CombinedOutput(); err != nil {
			t.Fatalf("nginx -t refuses the config: %v\n%s\n%s", err, out, cfg)
		}
		os.Remove(filepath.Join(dir, "nginx.pid"))
		p := startProcess(t, filepath.Join(dir, "nginx.log"), dir, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
		// SIGQUIT is nginx's graceful shutdown; SIGTERM its fast one,
		// which is what a test's end wants.
		n.URL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		n.proc = p
		err := p.waitFor(staticNginxReadyTimeout, n.ready)
		if err == nil {
			return n
		}
		lastErr = fmt.Errorf("%v\n--- error.log ---\n%s", err, fileTail(filepath.Join(dir, "error.log"), 2000))
		p.stop(t)
		if !strings.Contains(lastErr.Error(), "Address already in use") {
			break
		}
	}
	t.Fatalf("StartStaticNginx: %v", lastErr)
	return nil
}

// ready is the readiness probe: any HTTP answer from the server.
func (n *StaticNginx) ready() error {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(n.URL + "/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// PID is the nginx master's process ID.
func (n *StaticNginx) PID() int { return n.proc.pid() }
