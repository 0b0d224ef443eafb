package test

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nginxReadyTimeout bounds the wait for a started nginx to serve.
const nginxReadyTimeout = 10 * time.Second

// NginxTLS configures StartNginx: a static file server over TLS, the
// reference the fleet benchmarks measure hpfleet against.
type NginxTLS struct {
	// CertFile and KeyFile are the server's certificate chain and key.
	CertFile, KeyFile string
	// ClientCAFile, when set, makes nginx ask for and verify client
	// certificates against it ("ssl_verify_client optional"), as hpfleet
	// does for devices.
	ClientCAFile string
	// Files maps URL paths ("/checkin.json") to contents.
	Files map[string][]byte
	// Workers is worker_processes (default 2, one per core here).
	Workers int
	// PostSink, when set ("/events"), is a path that takes POSTs with
	// bodies up to 2 MiB, reads them whole and answers 204: the
	// reference for endpoints that ingest uploads.
	PostSink string
}

// Nginx is an nginx started by StartNginx on loopback.
type Nginx struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	proc *process
}

// StartNginx runs nginx (Debian's package) in the foreground with a
// private configuration, serving Files over TLS 1.2/1.3 on a free
// loopback port, and waits until it completes a TLS handshake. It skips
// the test when nginx is not installed, or fails it under CI=true.
func StartNginx(t testing.TB, c NginxTLS) *Nginx {
	t.Helper()
	bin := requireBinary(t, "nginx")
	// nginx's workers run as an unprivileged user when started as root:
	// the directory must be searchable by them, which t.TempDir()'s
	// parents are not.
	dir, err := os.MkdirTemp("", "nginx-")
	if err != nil {
		t.Fatalf("StartNginx: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root := filepath.Join(dir, "www")
	for path, data := range c.Files {
		p := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(path, "/")))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("StartNginx: %v", err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatalf("StartNginx: %v", err)
		}
	}
	for _, d := range []string{dir, root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("StartNginx: %v", err)
		}
	}
	// Copies readable by the master only are enough: it loads them.
	cert, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	copyFileMode(t, c.CertFile, cert, 0o644)
	copyFileMode(t, c.KeyFile, key, 0o600)
	clientCA := ""
	if c.ClientCAFile != "" {
		ca := filepath.Join(dir, "client-ca.crt")
		copyFileMode(t, c.ClientCAFile, ca, 0o644)
		clientCA = fmt.Sprintf("ssl_client_certificate %s;\n    ssl_verify_client optional;\n", ca)
	}
	sink := ""
	if c.PostSink != "" {
		sink = fmt.Sprintf("location = %s {\n      client_max_body_size 2m;\n      client_body_buffer_size 2m;\n      return 204;\n    }\n", c.PostSink)
	}
	workers := c.Workers
	if workers == 0 {
		workers = 2
	}
	port := freePort(t, "127.0.0.1", 1)
	n := &Nginx{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes %d;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %s/body;
  proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi;
  uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  default_type application/json;
  server {
    listen %s ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
    %s
    %s
    root %s;
  }
}
`, workers, dir, dir, dir, dir, dir, dir, dir, n.Addr, cert, key, clientCA, sink, root)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatalf("StartNginx: %v", err)
	}
	// -e: the error log before the configuration is read, which Debian's
	// build puts under /var/log otherwise.
	n.proc = startProcess(t, filepath.Join(dir, "nginx.out"), dir, bin, "-e", filepath.Join(dir, "error.log"), "-c", confFile, "-p", dir)
	n.proc.name = "nginx"
	// SIGQUIT is nginx's graceful stop; SIGTERM its fast one.
	n.proc.stopSignal = syscall.SIGTERM
	if err := n.proc.waitFor(nginxReadyTimeout, n.probe); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log")) // for the message only
		t.Fatalf("nginx not ready: %v\n%s\n%s", err, n.proc.logTail(2000), b)
	}
	return n
}

// probe completes a TLS handshake (no verification: only readiness).
func (n *Nginx) probe() error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", n.Addr, &tls.Config{InsecureSkipVerify: true}) // readiness only
	if err != nil {
		return err
	}
	return c.Close()
}

// PID is the master's process ID.
func (n *Nginx) PID() int { return n.proc.pid() }

// URL is "https://127.0.0.1:PORT".
func (n *Nginx) URL() string { return "https://" + n.Addr }

// RSS is the resident memory of the master and its workers, in bytes.
func (n *Nginx) RSS() int64 { return GroupRSS(n.proc.pid()) }

// CPU is the CPU time (user + system) the master and its workers used.
func (n *Nginx) CPU() time.Duration { return GroupCPU(n.proc.pid()) }

// RSS is the resident memory of hpfleet, in bytes.
func (h *HPFleet) RSS() int64 { return GroupRSS(h.proc.pid()) }

// CPU is the CPU time (user + system) hpfleet used.
func (h *HPFleet) CPU() time.Duration { return GroupCPU(h.proc.pid()) }

func copyFileMode(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatalf("copy %s: %v", from, err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatalf("copy %s: %v", from, err)
	}
}

// groupPIDs lists the processes of process group pgid.
func groupPIDs(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// GroupRSS sums VmRSS over the processes of process group pgid (a peer
// started by this package leads its own group), in bytes.
func GroupRSS(pgid int) int64 {
	var sum int64
	for _, pid := range groupPIDs(pgid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64) // the kernel writes a number
				sum += kb << 10
			}
		}
	}
	return sum
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times, 100 on every
// Linux architecture this project builds for.
const clockTicks = 100

// GroupCPU sums user and system CPU time over the processes of process
// group pgid.
func GroupCPU(pgid int) time.Duration {
	var ticks int64
	for _, pid := range groupPIDs(pgid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces) start
		// after the last ')'; utime and stime are fields 14 and 15.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64) // the kernel writes numbers
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * time.Second / clockTicks
}
