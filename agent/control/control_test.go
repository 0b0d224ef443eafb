package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/update"
)

// childEnv makes the test binary a control client run as another user.
const childEnv = "HARDPHONE_CONTROL_CHILD_SOCKET"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		_, err := NewClient(path).Status(context.Background())
		fmt.Println(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serve starts a server with h on a fresh socket and returns its path.
func serve(t *testing.T, h Handler, opts ...ServerOption) string {
	t.Helper()
	return serveAt(t, filepath.Join(t.TempDir(), "run", "control.sock"), h, opts...)
}

func serveAt(t *testing.T, path string, h Handler, opts ...ServerOption) string {
	t.Helper()
	srv, err := NewServer(h, opts...)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, ln); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

func statusHandler(ctx context.Context, req *Request) (any, error) {
	switch req.Command {
	case CmdStatus:
		return Status{Version: "v-test", Credentials: "tpm", Accounts: []sip.AccountStatus{{Name: "alice", Registered: true}}}, nil
	case CmdUpdateStatus:
		return nil, fmt.Errorf("no updater: %w", ErrUnavailable)
	case CmdCallHangup:
		return nil, fmt.Errorf("no call %q: %w", req.Call.CallID, ErrNotFound)
	case CmdUpdateInstall:
		return update.InstallResult{Slot: "B", Version: req.Install.Bundle}, nil
	}
	return nil, &Error{Code: CodeUnknownCommand, Message: "unknown"}
}

func TestRoundTrip(t *testing.T) {
	path := serve(t, statusHandler)
	c := NewClient(path)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil || st.Version != "v-test" || len(st.Accounts) != 1 || !st.Accounts[0].Registered {
		t.Fatalf("Status() = %+v, %v", st, err)
	}
	if _, err := c.UpdateStatus(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("UpdateStatus() = %v, want ErrUnavailable", err)
	}
	if _, err := c.Call(ctx, CmdCallHangup, "", "x@y"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Call(hangup) = %v, want ErrNotFound", err)
	}
	res, err := c.UpdateInstall(ctx, "/data/b.raucb", false)
	if err != nil || res.Slot != "B" || res.Version != "/data/b.raucb" {
		t.Errorf("UpdateInstall() = %+v, %v", res, err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("socket dir mode = %v, %v; want 0700", di.Mode().Perm(), err)
	}
}

func TestNoAgent(t *testing.T) {
	_, err := NewClient(filepath.Join(t.TempDir(), "none.sock")).Status(context.Background())
	if !errors.Is(err, ErrNoAgent) {
		t.Fatalf("Status() = %v, want ErrNoAgent", err)
	}
}

// raw sends raw bytes and returns the server's answer line.
func raw(t *testing.T, path string, req []byte) Response {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write(req); err != nil {
		t.Fatalf("write: %v", err)
	}
	if uc, ok := conn.(*net.UnixConn); ok {
		_ = uc.CloseWrite() // the request is all there is
	}
	b, err := io.ReadAll(io.LimitReader(conn, 1<<20))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var resp Response
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return resp
}

// TestBadRequests: malformed input gets an error answer, the handler never
// runs, and the server keeps serving.
func TestBadRequests(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	path := serve(t, func(ctx context.Context, req *Request) (any, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return statusHandler(ctx, req)
	})
	tests := []struct {
		name string
		req  []byte
		want Code
	}{
		{"garbage", []byte("GET / HTTP/1.0\r\n\r\n"), CodeBadRequest},
		{"no command", []byte(`{"v":1}` + "\n"), CodeBadRequest},
		{"old protocol", []byte(`{"command":"status"}` + "\n"), CodeVersion},
		{"future version", []byte(`{"v":2,"command":"status"}` + "\n"), CodeVersion},
		{"unknown field", []byte(`{"v":1,"command":"status","sudo":true}` + "\n"), CodeBadRequest},
		{"two values", []byte(`{"v":1,"command":"status"}{"v":1,"command":"status"}` + "\n"), CodeBadRequest},
		{"oversized", append(bytes.Repeat([]byte(" "), MaxRequestBytes+10), []byte(`{"v":1,"command":"status"}`+"\n")...), CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "oversized" {
				// The server stops reading at the limit and closes with the
				// rest unread: the client may see its answer or a reset.
				conn, err := net.Dial("unix", path)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_, _ = conn.Write(tt.req) // may fail once the server has closed
				b, _ := io.ReadAll(conn)
				var resp Response
				if len(b) > 0 && (json.Unmarshal(b, &resp) != nil || resp.Error == nil || resp.Error.Code != tt.want) {
					t.Fatalf("answer %q, want a bad-request error or a reset", b)
				}
				return
			}
			resp := raw(t, path, tt.req)
			if resp.Error == nil || resp.Error.Code != tt.want {
				t.Fatalf("answer = %+v, want error code %s", resp, tt.want)
			}
		})
	}
	mu.Lock()
	n := calls
	mu.Unlock()
	if n != 0 {
		t.Errorf("handler ran %d times for bad requests, want 0", n)
	}
	if _, err := NewClient(path).Status(context.Background()); err != nil {
		t.Errorf("Status() after bad requests = %v; the server must keep serving", err)
	}
}

// TestSlowClient: a client that connects and sends nothing is cut off after
// the read timeout; meanwhile others are served.
func TestSlowClient(t *testing.T) {
	path := serve(t, statusHandler)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := NewClient(path).Status(context.Background()); err != nil {
		t.Fatalf("Status() beside a silent client = %v", err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(readTimeout + 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(conn)
	var resp Response
	if err := json.Unmarshal(b, &resp); err != nil || resp.Error == nil || resp.Error.Code != CodeBadRequest {
		t.Fatalf("silent client got %q, want a bad-request answer and a close", b)
	}
}

// TestOtherUser: a process of another uid that can reach the socket (here
// made world-accessible on purpose) is refused by its kernel credentials.
func TestOtherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	bin, open := nobodyCanRun(t)
	path := serveAt(t, filepath.Join(open, "run", "control.sock"), statusHandler)
	for _, p := range []string{filepath.Dir(path), path} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "uid 65534 may not use this socket") || !strings.Contains(string(out), "forbidden") {
		t.Fatalf("client as uid 65534 got %q, want a forbidden answer", out)
	}
	// An allowed uid is served.
	path2 := serveAt(t, filepath.Join(open, "run2", "control.sock"), statusHandler, WithAllowedUIDs(65534))
	for _, p := range []string{filepath.Dir(path2), path2} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	cmd = exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path2)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err = cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "<nil>" {
		t.Fatalf("allowed uid 65534 got %q, %v; want served", out, err)
	}
}

// TestListenRefuses: the socket path must be absolute, a non-socket in the
// way is never removed, and a directory others can write is refused.
func TestListenRefuses(t *testing.T) {
	if _, err := Listen("rel/control.sock"); err == nil {
		t.Errorf("Listen(relative) = nil error")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "control.sock")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil {
		t.Errorf("Listen over a regular file = nil error")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Errorf("Listen removed the file in its way")
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(filepath.Join(open, "control.sock")); err == nil {
		t.Errorf("Listen in a world-writable directory = nil error")
	}
}

// TestWatch: events reach a watcher in order, and the stream ends when the
// client goes away.
func TestWatch(t *testing.T) {
	events := make(chan Event, 8)
	cancelled := make(chan struct{})
	path := serve(t, statusHandler, WithSubscribe(func() (<-chan Event, func()) {
		return events, func() { close(cancelled) }
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Event, 8)
	done := make(chan error, 1)
	go func() {
		done <- NewClient(path).Watch(ctx, func(ev Event) error { got <- ev; return nil })
	}()
	for _, k := range []sip.EventKind{sip.EventRegistered, sip.EventIncoming, sip.EventCallEnded} {
		events <- Event{Kind: k, Account: "alice"}
	}
	for _, want := range []sip.EventKind{sip.EventRegistered, sip.EventIncoming, sip.EventCallEnded} {
		select {
		case ev := <-got:
			if ev.Kind != want {
				t.Fatalf("event %s, want %s", ev.Kind, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch() after cancel = %v, want nil", err)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Errorf("the server did not end the subscription after the client left")
	}
}

// nobodyCanRun copies the test binary where uid 65534 may execute it, into
// a directory uid 65534 may enter.
func nobodyCanRun(t *testing.T) (string, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "control-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "control.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, dir
}

// TestTransferRequests: Transfer and TransferTo send call.transfer with the
// call and the target or the consultation call, each named by Call-ID or
// by dialog, and the server reads them back as sent.
func TestTransferRequests(t *testing.T) {
	got := make(chan Request, 1)
	path := serve(t, func(_ context.Context, req *Request) (any, error) {
		got <- *req
		return sip.CallStatus{ID: req.Call.CallID, Transfer: &sip.TransferStatus{Role: sip.TransferRoleTransferor, State: sip.TransferTrying}}, nil
	})
	c := NewClient(path)
	ctx := context.Background()
	cs, err := c.Transfer(ctx, "alice", "c1@h", "sip:carol@pbx")
	if err != nil || cs.Transfer == nil || cs.Transfer.State != sip.TransferTrying {
		t.Fatalf("Transfer() = %+v, %v", cs, err)
	}
	req := <-got
	if req.Command != CmdCallTransfer || req.Call.Account != "alice" || req.Call.CallID != "c1@h" || req.Call.Dialog != "" ||
		req.Transfer == nil || req.Transfer.Target != "sip:carol@pbx" || req.Transfer.To != nil {
		t.Errorf("Transfer sent %+v (transfer %+v), want call c1@h to sip:carol@pbx", req, req.Transfer)
	}
	if _, err := c.TransferTo(ctx, "", "c1@h;a;b", "c2@h;c;d"); err != nil {
		t.Fatalf("TransferTo() = %v", err)
	}
	req = <-got
	if req.Call.Dialog != "c1@h;a;b" || req.Call.CallID != "c1@h" || req.Transfer.Target != "" || req.Transfer.To == nil ||
		req.Transfer.To.CallID != "c2@h" || req.Transfer.To.Dialog != "c2@h;c;d" {
		t.Errorf("TransferTo sent call %+v, transfer %+v; want dialogs c1@h;a;b to c2@h;c;d", req.Call, req.Transfer)
	}
}

// TestListenLooseUmask: under umask 0 (every new file 0777 unless its
// maker says otherwise) the socket still ends up 0600 in its directory,
// was bound inside a private directory that is gone afterwards, and a
// second Listen replaces the first's stale socket.
func TestListenLooseUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "control.sock")
	for i := 0; i < 2; i++ {
		ln, err := Listen(path)
		if err != nil {
			t.Fatalf("Listen %d: %v", i, err)
		}
		st, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Type() != fs.ModeSocket || st.Mode().Perm() != 0o600 {
			t.Fatalf("socket mode %v, want a 0600 socket", st.Mode())
		}
		if dst, err := os.Stat(dir); err != nil || dst.Mode().Perm() != 0o700 {
			t.Fatalf("socket directory: %v %v, want 0700", dst.Mode(), err)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "control.sock" {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("directory holds %q, want the socket only (no private bind directory left)", names)
		}
		ln.ln.Close()
	}
}

// TestListenLongPath: a socket path near the limit of a unix socket
// address still works (its private bind directory would not fit, so it is
// bound under a short name beside it), and one past the limit is refused
// with the reason, not with bind's "invalid argument".
func TestListenLongPath(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, strings.Repeat("d", maxSocketPath-len(base)-len("//x/ctl.sock")))
	path := filepath.Join(dir, "x", "ctl.sock")
	if len(path) != maxSocketPath {
		t.Fatalf("test path of %d bytes, want %d", len(path), maxSocketPath)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen(%d-byte path) = %v", len(path), err)
	}
	st, err := os.Lstat(path)
	if err != nil || st.Mode().Type() != fs.ModeSocket || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v, want a 0600 socket", st, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want the socket only", len(ents))
	}
	ln.ln.Close()
	if _, err := Listen(path + "x"); err == nil || !strings.Contains(err.Error(), "at most 107") {
		t.Fatalf("Listen(%d-byte path) = %v, want a refusal naming the limit", len(path)+1, err)
	}
}
