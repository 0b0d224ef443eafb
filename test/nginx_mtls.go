package test

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DirectorNginxConfig configures StartDirectorNginx.
type DirectorNginxConfig struct {
	// CertFile and KeyFile are the server's certificate chain and key
	// (the fleet server's: the phone pins its CA and name).
	CertFile, KeyFile string
	// ClientCAFile is the CA device certificates must chain to (the
	// fleet's device CA).
	ClientCAFile string
}

// DirectorNginx is Debian's nginx serving per-device director
// repositories over mutual TLS, as hpfleet serves them: a device's files
// under /director/<device-id>/ only to a client certificate whose CN is
// that device ID (403 to any other, and no TLS session at all without a
// certificate from the device CA); static files with ETag and
// If-None-Match (304).
type DirectorNginx struct {
	// URL is https://127.0.0.1:PORT (no trailing slash).
	URL string
	// Root is the document root: a device's repository goes in
	// Root/director/<device-id>/ (tufrepo.WriteDeviceRepo(Root+"/director", ...)).
	Root string
	// AccessLog has one line per request:
	// "METHOD URI STATUS BYTES_SENT CLIENT_DN".
	AccessLog string

	proc *process
}

// StartDirectorNginx starts nginx on a free port of 127.0.0.1 with a
// private config and prefix, and waits until it completes a TLS handshake.
// It skips (fails under CI=true) when nginx is not installed.
func StartDirectorNginx(t testing.TB, c DirectorNginxConfig) *DirectorNginx {
	t.Helper()
	bin := requireBinary(t, "nginx")
	dir, err := os.MkdirTemp("", "nginx-director-")
	if err != nil {
		t.Fatalf("StartDirectorNginx: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The worker runs as nobody when we are root: it reads the root.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("StartDirectorNginx: %v", err)
	}
	n := &DirectorNginx{Root: filepath.Join(dir, "www"), AccessLog: filepath.Join(dir, "access.log")}
	for _, d := range []string{filepath.Join(n.Root, "director"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("StartDirectorNginx: %v", err)
		}
	}
	if err := os.Chmod(n.Root, 0o755); err != nil {
		t.Fatalf("StartDirectorNginx: %v", err)
	}
	cert, key, ca := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "client-ca.crt")
	copyFileMode(t, c.CertFile, cert, 0o644)
	copyFileMode(t, c.KeyFile, key, 0o600)
	copyFileMode(t, c.ClientCAFile, ca, 0o644)
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
	tmp := filepath.Join(dir, "tmp")
	port := freePort(t, "127.0.0.1", 1)
	n.URL = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// The device ID is the certificate's CN ($ssl_client_s_dn is RFC 2253:
	// "CN=dev-...,O=..."); a device's directory is served to it alone.
	conf := fmt.Sprintf(`# Private config written by test.StartDirectorNginx.
%s
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log warn;
daemon off;
events { worker_connections 256; }
http {
    log_format hp '$request_method $request_uri $status $bytes_sent "$ssl_client_s_dn"';
    access_log %s hp;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    default_type application/octet-stream;
    types { application/json json; }
    keepalive_timeout 60;
    keepalive_requests 1000000;
    server_tokens off;
    map $ssl_client_s_dn $hp_device {
        default "";
        "~(^|,)CN=(?<cn>[A-Za-z0-9._-]+)(,|$)" $cn;
    }
    server {
        listen 127.0.0.1:%d ssl;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_client_certificate %s;
        ssl_verify_client on;
        ssl_verify_depth 2;
        root %s;
        location ~ ^/director/(?<dev>[A-Za-z0-9._-]+)/ {
            if ($hp_device = "") { return 403; }
            if ($hp_device != $dev) { return 403; }
        }
        location / { return 404; }
    }
}
`, userLine, dir, dir, n.AccessLog, tmp, tmp, tmp, tmp, tmp, port, cert, key, ca, n.Root)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatalf("StartDirectorNginx: %v", err)
	}
	if out, err := exec.Command(bin, "-t", "-q", "-p", dir, "-c", confFile, "-e", filepath.Join(dir, "error.log")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t refuses the config: %v\n%s\n%s", err, out, conf)
	}
	n.proc = startProcess(t, filepath.Join(dir, "nginx.out"), dir, bin, "-e", filepath.Join(dir, "error.log"), "-c", confFile, "-p", dir)
	n.proc.name = "nginx"
	// SIGQUIT is nginx's graceful stop; SIGTERM its fast one.
	n.proc.stopSignal = syscall.SIGTERM
	if err := n.proc.waitFor(nginxReadyTimeout, n.probe); err != nil {
		t.Fatalf("nginx not ready: %v\n%s\n%s", err, n.proc.logTail(2000), fileTail(filepath.Join(dir, "error.log"), 2000))
	}
	return n
}

// probe completes a TCP connection and a TLS handshake far enough to see
// the server's certificate (no verification: readiness only; the server
// then refuses this client, which has no certificate).
func (n *DirectorNginx) probe() error {
	addr := strings.TrimPrefix(n.URL, "https://")
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) // readiness only
	if err != nil && !strings.Contains(err.Error(), "certificate") {
		return err
	}
	if c != nil {
		c.Close()
	}
	return nil
}

// PID is the nginx master's process ID.
func (n *DirectorNginx) PID() int { return n.proc.pid() }
