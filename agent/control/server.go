package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Limits on what one client can make the server hold.
const (
	// MaxRequestBytes bounds one request line; a request is a few hundred
	// bytes, so anything near this is not a client of ours.
	MaxRequestBytes = 64 << 10
	// readTimeout bounds the time a client may take to send its request.
	readTimeout = 5 * time.Second
	// writeTimeout bounds each write of an answer or event.
	writeTimeout = 10 * time.Second
	// maxConns bounds the connections served at once; more wait in the
	// kernel's backlog.
	maxConns = 16
)

// Handler answers one request. Its result is marshalled as the Response's
// Result; an error becomes an Error whose code errors.Is against the
// package's sentinels chooses.
type Handler func(ctx context.Context, req *Request) (any, error)

// Subscribe starts an event subscription for CmdWatch: events arrive on the
// channel until cancel is called. A subscriber that falls behind loses
// events rather than slowing the agent; the channel's capacity is the bound.
type Subscribe func() (events <-chan Event, cancel func())

// Server serves the control protocol on a unix socket.
type Server struct {
	handle    Handler
	subscribe Subscribe           // nil: CmdWatch is unavailable
	refused   func(uid uint32)    // nil: nobody is told
	allow     map[uint32]struct{} // uids besides root and our own
	log       *slog.Logger
	sem       chan struct{}
}

// ServerOption configures a Server.
type ServerOption func(*Server) error

// WithAllowedUIDs lets these uids use the socket besides root and the
// agent's own uid.
func WithAllowedUIDs(uids ...uint32) ServerOption {
	return func(s *Server) error {
		for _, u := range uids {
			s.allow[u] = struct{}{}
		}
		return nil
	}
}

// WithSubscribe enables CmdWatch.
func WithSubscribe(f Subscribe) ServerOption {
	return func(s *Server) error {
		if f == nil {
			return errors.New("control: nil subscribe")
		}
		s.subscribe = f
		return nil
	}
}

// WithRefused has f told about every caller refused by its credentials.
func WithRefused(f func(uid uint32)) ServerOption {
	return func(s *Server) error {
		s.refused = f
		return nil
	}
}

// WithLogger sets the logger; the server adds component=control.
func WithLogger(l *slog.Logger) ServerOption {
	return func(s *Server) error {
		if l == nil {
			return errors.New("control: nil logger")
		}
		s.log = l
		return nil
	}
}

// NewServer returns a server that answers with h.
func NewServer(h Handler, opts ...ServerOption) (*Server, error) {
	if h == nil {
		return nil, errors.New("control: nil handler")
	}
	s := &Server{handle: h, allow: map[uint32]struct{}{0: {}, uint32(os.Getuid()): {}},
		log: slog.New(slog.DiscardHandler), sem: make(chan struct{}, maxConns)}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.log = s.log.With("component", "control")
	return s, nil
}

// Listen creates the control socket at path so that nobody but its owner
// can ever connect to it: the directory is created 0700 (an existing one
// must belong to us and not be writable by others), the socket is bound
// under a temporary name, made 0600, and only then renamed into place. A
// stale socket at path (an agent that died) is replaced; any other file
// there is refused, never removed.
func Listen(path string) (*Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("control socket %q: want an absolute path", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control socket %s: a %v is in the way; not removing it", path, st.Mode().Type())
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("control socket %q: %d bytes, a unix socket's path holds at most %d", path, len(path), maxSocketPath)
	}
	// The socket is bound inside a private directory (0700 whatever the
	// umask: MkdirTemp creates it so), so nobody else can reach it in the
	// moment between bind, which applies the process umask, and chmod.
	// Where that longer path would not fit a socket address, it is bound
	// in dir under a short name (checkDir and the peer-credential check
	// still keep others out).
	priv, err := os.MkdirTemp(dir, ".c")
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.Remove(priv)
	tmp := filepath.Join(priv, "s")
	if len(tmp) > maxSocketPath {
		tmp = filepath.Join(dir, ".s"+strconv.FormatInt(int64(os.Getpid()), 36))
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("control socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// The listener must not unlink the final name when closed by a later
	// agent's cleanup of this one: it removes what it bound, tmp, which
	// the rename below makes a no-op.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &Listener{ln: ln, path: path}, nil
}

// maxSocketPath is the longest path a unix socket address holds
// (sun_path is 108 bytes with its NUL).
const maxSocketPath = 107

// Listener is a control socket made by Listen.
type Listener struct {
	ln   *net.UnixListener
	path string
}

// Path is the socket's path.
func (l *Listener) Path() string { return l.path }

// Serve answers connections on ln until ctx ends, then closes ln and
// removes the socket file.
func (s *Server) Serve(ctx context.Context, l *Listener) error {
	ln, path := l.ln, l.path
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer func() {
		// Remove the socket only if it is still ours (a newer agent may
		// have replaced it).
		if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
			_ = os.Remove(path) // best effort: a stale socket is replaced at the next Listen
		}
	}()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("control socket: %w", err)
		}
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			conn.Close()
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.sem }()
			defer conn.Close()
			s.serveConn(ctx, conn)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, conn *net.UnixConn) {
	uid, err := peerUID(conn)
	if err != nil {
		s.log.Warn("control connection without credentials", "error", err)
		return
	}
	if _, ok := s.allow[uid]; !ok {
		s.log.Warn("control connection refused", "uid", uid, "security_event", true)
		if s.refused != nil {
			s.refused(uid)
		}
		s.reply(conn, nil, &Error{Code: CodeForbidden, Message: fmt.Sprintf("uid %d may not use this socket", uid)})
		return
	}
	if err := conn.SetReadDeadline(time.Now().Add(readTimeout)); err != nil {
		return
	}
	req, err := readRequest(conn)
	if err != nil {
		s.reply(conn, nil, &Error{Code: CodeBadRequest, Message: err.Error()})
		return
	}
	if req.V != Version {
		s.reply(conn, nil, &Error{Code: CodeVersion, Message: fmt.Sprintf("protocol version %d, this agent speaks %d", req.V, Version)})
		return
	}
	if req.Command == CmdWatch {
		s.watch(ctx, conn)
		return
	}
	res, err := s.handle(ctx, req)
	if err != nil {
		s.reply(conn, nil, &Error{Code: codeOf(err), Message: err.Error()})
		return
	}
	s.reply(conn, res, nil)
}

// readRequest reads one newline-terminated JSON request of at most
// MaxRequestBytes and refuses unknown fields: a field we do not know is a
// client from a newer protocol, which its version already says.
func readRequest(r io.Reader) (*Request, error) {
	line, err := bufio.NewReader(io.LimitReader(r, MaxRequestBytes+1)).ReadBytes('\n')
	if len(line) > MaxRequestBytes {
		return nil, fmt.Errorf("request longer than %d bytes", MaxRequestBytes)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read request: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode request: more than one JSON value")
	}
	if req.Command == "" {
		return nil, errors.New("request has no command")
	}
	return &req, nil
}

func (s *Server) reply(conn net.Conn, res any, e *Error) {
	resp := Response{V: Version, Error: e}
	if e == nil {
		b, err := json.Marshal(res)
		if err != nil {
			resp.Error = &Error{Code: CodeFailed, Message: "encode result: " + err.Error()}
		} else {
			resp.Result = b
		}
	}
	if err := writeLine(conn, resp); err != nil {
		s.log.Debug("control reply", "error", err)
	}
}

func writeLine(conn net.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	_, err = conn.Write(append(b, '\n'))
	return err
}

// watch acknowledges CmdWatch, then writes events until the client goes
// away or ctx ends.
func (s *Server) watch(ctx context.Context, conn *net.UnixConn) {
	if s.subscribe == nil {
		s.reply(conn, nil, &Error{Code: CodeUnavailable, Message: "this agent has no event stream"})
		return
	}
	events, cancel := s.subscribe()
	defer cancel()
	s.reply(conn, struct{}{}, nil)
	// The client sends nothing more; a read returning means it closed.
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		_ = conn.SetReadDeadline(time.Time{}) // no deadline: wait for the close
		var b [1]byte
		_, _ = conn.Read(b[:]) // any outcome means the stream is over
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-gone:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if err := writeLine(conn, ev); err != nil {
				return
			}
		}
	}
}
