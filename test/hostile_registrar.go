package test

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// HostileRegistrar is a SIP registrar over mutual TLS written in Go for
// attack tests. It plays a hostile or compromised proxy: it accepts the
// phone's REGISTER (with 200, after a SHA-256 digest challenge when asked
// to), keeps the phone's TLS flow open, answers its RFC 5626 keepalives,
// and hands every other message the phone sends to the test, which writes
// whatever raw SIP it likes back over the same flow. It is the attacker,
// not a stand-in for Kamailio: it relays nothing and checks nothing beyond
// the phone's client certificate and REGISTER digest.
type HostileRegistrar struct {
	// Addr is the registrar's host:port, for the phone's registrar key.
	Addr string
	// IP is the address it listens on.
	IP string

	t     testing.TB
	ln    net.Listener
	realm string            // "" = REGISTER is not challenged
	users map[string]string // digest passwords by user
	done  chan struct{}

	mu    sync.Mutex // guards flow and flows
	flow  *HostileFlow
	flows []*HostileFlow
	ready chan struct{} // closed and replaced whenever a flow registers
}

// HostileOption configures StartHostileRegistrar.
type HostileOption func(*HostileRegistrar)

// HostileChallenge makes the registrar challenge every REGISTER with a
// SHA-256, qop=auth digest for realm and check the answer against users'
// passwords (403 when it is wrong).
func HostileChallenge(realm string, users map[string]string) HostileOption {
	return func(h *HostileRegistrar) {
		h.realm = realm
		h.users = map[string]string{}
		for u, p := range users {
			h.users[u] = p
		}
	}
}

// HostileListenIP makes the registrar listen on ip instead of 127.0.0.1.
func HostileListenIP(ip string) HostileOption {
	return func(h *HostileRegistrar) { h.IP = ip }
}

// StartHostileRegistrar listens on a free port with a server certificate
// from pki (the phone's trust anchor) and requires a client certificate
// from the same CA. It stops in t.Cleanup.
func StartHostileRegistrar(t testing.TB, pki *PKI, opts ...HostileOption) *HostileRegistrar {
	t.Helper()
	h := &HostileRegistrar{t: t, IP: "127.0.0.1", done: make(chan struct{}), ready: make(chan struct{})}
	for _, o := range opts {
		o(h)
	}
	certFile, keyFile := pki.Server(h.IP)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("hostile registrar: %v", err)
	}
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatalf("hostile registrar: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("hostile registrar: no CA certificate in %s", pki.CAFile)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	ln, err := tls.Listen("tcp", net.JoinHostPort(h.IP, "0"), conf)
	if err != nil {
		t.Fatalf("hostile registrar listen: %v", err)
	}
	h.ln, h.Addr = ln, ln.Addr().String()
	go h.accept()
	t.Cleanup(func() {
		ln.Close()
		<-h.done
		h.mu.Lock()
		flows := h.flows
		h.mu.Unlock()
		for _, f := range flows {
			f.conn.Close()
			<-f.closed
		}
	})
	return h
}

func (h *HostileRegistrar) accept() {
	defer close(h.done)
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		f := &HostileFlow{h: h, conn: c.(*tls.Conn), closed: make(chan struct{}), notify: make(chan struct{})}
		h.mu.Lock()
		h.flows = append(h.flows, f)
		h.mu.Unlock()
		go f.read()
	}
}

// Flow waits until a phone has registered over a flow and returns the flow
// that registered last.
func (h *HostileRegistrar) Flow(t testing.TB, timeout time.Duration) *HostileFlow {
	t.Helper()
	deadline := time.After(timeout)
	for {
		h.mu.Lock()
		f, ready := h.flow, h.ready
		h.mu.Unlock()
		if f != nil {
			return f
		}
		select {
		case <-ready:
		case <-deadline:
			t.Fatalf("hostile registrar: no phone registered within %v", timeout)
			return nil
		}
	}
}

func (h *HostileRegistrar) registered(f *HostileFlow) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.flow != f {
		h.flow = f
		close(h.ready)
		h.ready = make(chan struct{})
	}
}

// HostileFlow is one phone's TLS flow to the hostile registrar.
type HostileFlow struct {
	h      *HostileRegistrar
	conn   *tls.Conn
	closed chan struct{}
	wmu    sync.Mutex // serialises writes

	mu     sync.Mutex // guards msgs, taken, notify, nonces
	msgs   []*SIPMessage
	taken  []bool
	notify chan struct{} // closed and replaced on every new message
	nonces map[string]bool
}

// maxFlowMessages bounds what a flow keeps for the test.
const maxFlowMessages = 4096

// Local is the registrar's end of the flow ("ip:port"), for Via headers.
func (f *HostileFlow) Local() string { return f.conn.LocalAddr().String() }

// Remote is the phone's end of the flow.
func (f *HostileFlow) Remote() string { return f.conn.RemoteAddr().String() }

// Write sends raw SIP over the flow.
func (f *HostileFlow) Write(t testing.TB, msg string) {
	t.Helper()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if _, err := io.WriteString(f.conn, msg); err != nil {
		t.Fatalf("hostile registrar write: %v", err)
	}
}

// Next returns the first message from the phone that match accepts and
// that no earlier Next returned, waiting up to timeout.
func (f *HostileFlow) Next(t testing.TB, timeout time.Duration, match func(*SIPMessage) bool) *SIPMessage {
	t.Helper()
	deadline := time.After(timeout)
	for {
		f.mu.Lock()
		for i, m := range f.msgs {
			if !f.taken[i] && match(m) {
				f.taken[i] = true
				f.mu.Unlock()
				return m
			}
		}
		notify := f.notify
		f.mu.Unlock()
		select {
		case <-notify:
		case <-f.closed:
			t.Fatalf("hostile registrar: flow closed while waiting for a message")
			return nil
		case <-deadline:
			t.Fatalf("hostile registrar: no matching message within %v; got %s", timeout, f.summary())
			return nil
		}
	}
}

// Messages returns every message the phone sent over the flow, REGISTERs
// excepted, in order.
func (f *HostileFlow) Messages() []*SIPMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*SIPMessage(nil), f.msgs...)
}

func (f *HostileFlow) summary() string {
	var b strings.Builder
	for _, m := range f.Messages() {
		fmt.Fprintf(&b, "\n  %s (CSeq %s)", m.Start, m.Get("CSeq"))
	}
	return b.String()
}

// SIPResponseTo matches a response to method with a final (or any when
// final is false) status for the Call-ID.
func SIPResponseTo(method, callID string, final bool) func(*SIPMessage) bool {
	return func(m *SIPMessage) bool {
		if m.IsRequest() || m.Get("Call-ID") != callID || !strings.HasSuffix(m.Get("CSeq"), " "+method) {
			return false
		}
		return !final || m.Status() >= 200
	}
}

// SIPRequestOf matches a request of method for the Call-ID.
func SIPRequestOf(method, callID string) func(*SIPMessage) bool {
	return func(m *SIPMessage) bool {
		return m.IsRequest() && m.Method() == method && m.Get("Call-ID") == callID
	}
}

func (f *HostileFlow) read() {
	defer close(f.closed)
	rd := bufio.NewReaderSize(f.conn, 64<<10)
	for {
		m, err := f.readMsg(rd)
		if err != nil {
			return
		}
		if m.IsRequest() && m.Method() == "REGISTER" {
			f.register(m)
			continue
		}
		f.mu.Lock()
		if len(f.msgs) < maxFlowMessages {
			f.msgs = append(f.msgs, m)
			f.taken = append(f.taken, false)
		}
		close(f.notify)
		f.notify = make(chan struct{})
		f.mu.Unlock()
	}
}

// readMsg reads one message, answering RFC 5626 §4.4.1 CRLFCRLF pings with
// a CRLF pong on the way.
func (f *HostileFlow) readMsg(rd *bufio.Reader) (*SIPMessage, error) {
	var start string
	blank := 0
	for start == "" {
		l, err := rd.ReadString('\n')
		if err != nil {
			return nil, err
		}
		start = strings.TrimRight(l, "\r\n")
		if start == "" {
			if blank++; blank == 2 {
				blank = 0
				f.wmu.Lock()
				_, err := io.WriteString(f.conn, "\r\n")
				f.wmu.Unlock()
				if err != nil {
					return nil, err
				}
			}
		}
	}
	m := &SIPMessage{Start: start}
	for {
		l, err := rd.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		if len(m.Headers) > 256 {
			return nil, errors.New("too many header lines")
		}
		m.Headers = append(m.Headers, l)
	}
	n, err := strconv.Atoi(m.Get("Content-Length"))
	if err != nil && m.Get("Content-Length") != "" {
		return nil, fmt.Errorf("content-length %q", m.Get("Content-Length"))
	}
	if n < 0 || n > 64<<10 {
		return nil, fmt.Errorf("content-length %d", n)
	}
	if n > 0 {
		b := make([]byte, n)
		if _, err := io.ReadFull(rd, b); err != nil {
			return nil, err
		}
		m.Body = string(b)
	}
	return m, nil
}

// register answers a REGISTER: a digest challenge first when configured,
// then 200 with the phone's Contact and the expiry it asked for.
func (f *HostileFlow) register(req *SIPMessage) {
	h := f.h
	if h.realm != "" {
		auth := req.Get("Authorization")
		if auth == "" {
			nonce := make([]byte, 16)
			if _, err := rand.Read(nonce); err != nil {
				f.respond(req, 500, "Server Internal Error", "")
				return
			}
			n := hex.EncodeToString(nonce)
			f.mu.Lock()
			if f.nonces == nil {
				f.nonces = map[string]bool{}
			}
			f.nonces[n] = true
			f.mu.Unlock()
			f.respond(req, 401, "Unauthorized", fmt.Sprintf("WWW-Authenticate: Digest realm=%q, nonce=%q, qop=\"auth\", algorithm=SHA-256\r\n", h.realm, n))
			return
		}
		if !f.checkDigest(req, auth) {
			f.respond(req, 403, "Forbidden", "")
			return
		}
	}
	var extra strings.Builder
	exp := req.Get("Expires")
	if exp == "" {
		exp = "600"
	}
	if c := req.Get("Contact"); c != "" {
		fmt.Fprintf(&extra, "Contact: %s\r\n", c)
	}
	fmt.Fprintf(&extra, "Expires: %s\r\n", exp)
	f.respond(req, 200, "OK", extra.String())
	if exp != "0" {
		h.registered(f)
	}
}

func (f *HostileFlow) checkDigest(req *SIPMessage, auth string) bool {
	p := DigestParams(auth)
	f.mu.Lock()
	known := f.nonces[p["nonce"]]
	f.mu.Unlock()
	pw, ok := f.h.users[p["username"]]
	if !known || !ok || p["realm"] != f.h.realm || p["qop"] != "auth" {
		return false
	}
	h := func(s string) string { x := sha256.Sum256([]byte(s)); return hex.EncodeToString(x[:]) }
	ha1 := h(p["username"] + ":" + p["realm"] + ":" + pw)
	ha2 := h("REGISTER:" + p["uri"])
	want := h(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + ha2)
	return p["response"] == want
}

// respond writes a response to req with extra header lines (each ending
// in CRLF) and no body.
func (f *HostileFlow) respond(req *SIPMessage, code int, reason, extra string) {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, v := range req.All("Via") {
		fmt.Fprintf(&b, "Via: %s\r\n", v)
	}
	to := req.Get("To")
	if !strings.Contains(to, "tag=") {
		to += ";tag=reg" + strconv.Itoa(code)
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n%sContent-Length: 0\r\n\r\n",
		req.Get("From"), to, req.Get("Call-ID"), req.Get("CSeq"), extra)
	f.wmu.Lock()
	defer f.wmu.Unlock()
	// A write error means the phone went away; its read loop ends too.
	_, _ = io.WriteString(f.conn, b.String())
}

// SIPMessage is one SIP message as the hostile registrar read it.
type SIPMessage struct {
	// Start is the request or status line.
	Start string
	// Headers are the raw header lines, in order.
	Headers []string
	Body    string
}

// compactHeaders maps RFC 3261 §7.3.3 compact forms to full names.
var compactHeaders = map[string]string{
	"i": "call-id", "f": "from", "t": "to", "v": "via", "l": "content-length",
	"c": "content-type", "m": "contact", "k": "supported", "s": "subject", "e": "content-encoding",
}

func canonHeader(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if full, ok := compactHeaders[n]; ok {
		return full
	}
	return n
}

// IsRequest reports whether m is a request.
func (m *SIPMessage) IsRequest() bool { return !strings.HasPrefix(m.Start, "SIP/2.0 ") }

// Method is a request's method.
func (m *SIPMessage) Method() string { f := strings.Fields(m.Start); return f[0] }

// Status is a response's status code (0 for a request).
func (m *SIPMessage) Status() int {
	f := strings.Fields(m.Start)
	if len(f) < 2 || m.IsRequest() {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// Get returns the first value of a header (compact forms understood).
func (m *SIPMessage) Get(name string) string {
	if v := m.All(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// All returns every value of a header, in order.
func (m *SIPMessage) All(name string) []string {
	want := canonHeader(name)
	var out []string
	for _, l := range m.Headers {
		k, v, _ := strings.Cut(l, ":")
		if canonHeader(k) == want {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// Tag returns the tag parameter of a From or To header value.
func Tag(headerValue string) string {
	_, rest, ok := strings.Cut(headerValue, ";tag=")
	if !ok {
		return ""
	}
	end := strings.IndexAny(rest, ";> ")
	if end >= 0 {
		rest = rest[:end]
	}
	return rest
}

// DigestParams splits a Digest challenge or credentials value into its
// parameters, quotes removed.
func DigestParams(v string) map[string]string {
	out := map[string]string{}
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ' '); i > 0 && strings.EqualFold(v[:i], "Digest") {
		v = v[i+1:]
	}
	for len(v) > 0 {
		v = strings.TrimLeft(v, " ,")
		eq := strings.IndexByte(v, '=')
		if eq <= 0 {
			break
		}
		k := strings.ToLower(strings.TrimSpace(v[:eq]))
		v = v[eq+1:]
		var val string
		if strings.HasPrefix(v, `"`) {
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				break
			}
			val, v = v[1:1+end], v[2+end:]
		} else {
			end := strings.IndexByte(v, ',')
			if end < 0 {
				end = len(v)
			}
			val, v = strings.TrimSpace(v[:end]), v[end:]
		}
		out[k] = val
	}
	return out
}
