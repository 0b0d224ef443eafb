package integration

import (
	"bufio"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawPeer is a minimal SIP-over-TLS user agent written for the negative
// tests: it registers to Kamailio like any phone and then answers (or sends)
// exactly the SDP a test hands it, including SDP no honest phone would send.
type rawPeer struct {
	t      testing.TB
	user   string
	conn   *tls.Conn
	rd     *bufio.Reader
	mu     sync.Mutex
	msgs   chan *rawMsg
	onInv  func(offer string) (code int, answer string)
	byes   chan string
	closed chan struct{}
}

type rawMsg struct {
	start   string
	headers textproto.MIMEHeader
	order   []string // raw header lines, in order, for copying Via/Record-Route
	body    string
}

func (m *rawMsg) isRequest() bool { return !strings.HasPrefix(m.start, "SIP/2.0") }
func (m *rawMsg) method() string  { f := strings.Fields(m.start); return f[0] }
func (m *rawMsg) status() int {
	f := strings.Fields(m.start)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
func (m *rawMsg) get(name string) string { return m.headers.Get(name) }
func (m *rawMsg) all(name string) []string {
	var out []string
	for _, l := range m.order {
		k, v, _ := strings.Cut(l, ":")
		if strings.EqualFold(strings.TrimSpace(k), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

func readMsg(rd *bufio.Reader) (*rawMsg, error) {
	var start string
	for start == "" {
		l, err := rd.ReadString('\n')
		if err != nil {
			return nil, err
		}
		start = strings.TrimRight(l, "\r\n")
	}
	m := &rawMsg{start: start, headers: textproto.MIMEHeader{}}
	for {
		l, err := rd.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		m.order = append(m.order, l)
		k, v, _ := strings.Cut(l, ":")
		m.headers.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	n, _ := strconv.Atoi(m.get("Content-Length"))
	if n == 0 {
		n, _ = strconv.Atoi(m.get("l"))
	}
	if n > 0 {
		b := make([]byte, n)
		if _, err := io.ReadFull(rd, b); err != nil {
			return nil, err
		}
		m.body = string(b)
	}
	return m, nil
}

// startRawPeer connects to the registrar with the given client certificate
// and registers user with MD5 digest.
func startRawPeer(t testing.TB, registrar, caFile, certFile, keyFile, user, password string) *rawPeer {
	t.Helper()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("raw peer: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("raw peer: %v", err)
	}
	host, _, _ := net.SplitHostPort(registrar)
	conn, err := tls.Dial("tcp", registrar, &tls.Config{RootCAs: pool, ServerName: host, Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatalf("raw peer dial %s: %v", registrar, err)
	}
	p := &rawPeer{t: t, user: user, conn: conn, rd: bufio.NewReader(conn), msgs: make(chan *rawMsg, 16),
		byes: make(chan string, 4), closed: make(chan struct{})}
	t.Cleanup(func() { conn.Close(); <-p.closed })
	go p.loop()
	p.register(registrar, password)
	return p
}

func (p *rawPeer) local() string { return p.conn.LocalAddr().String() }

func (p *rawPeer) write(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.conn, s); err != nil {
		p.t.Logf("raw peer write: %v", err)
	}
}

func (p *rawPeer) loop() {
	defer close(p.closed)
	for {
		m, err := readMsg(p.rd)
		if err != nil {
			return
		}
		if !m.isRequest() {
			p.msgs <- m
			continue
		}
		switch m.method() {
		case "INVITE":
			code, answer := 488, ""
			if p.onInv != nil {
				code, answer = p.onInv(m.body)
			}
			p.respond(m, code, answer)
		case "BYE":
			p.respond(m, 200, "")
			p.byes <- m.get("Call-ID")
		case "ACK":
		default:
			p.respond(m, 200, "")
		}
	}
}

var reasons = map[int]string{200: "OK", 180: "Ringing", 488: "Not Acceptable Here", 403: "Forbidden"}

func (p *rawPeer) respond(req *rawMsg, code int, body string) {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reasons[code])
	for _, v := range req.all("Via") {
		fmt.Fprintf(&b, "Via: %s\r\n", v)
	}
	for _, v := range req.all("Record-Route") {
		fmt.Fprintf(&b, "Record-Route: %s\r\n", v)
	}
	to := req.get("To")
	if !strings.Contains(to, "tag=") {
		to += ";tag=peer" + strconv.Itoa(rand.IntN(1e6))
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n", req.get("From"), to, req.get("Call-ID"), req.get("CSeq"))
	fmt.Fprintf(&b, "Contact: <sip:%s@%s;transport=tls>\r\n", p.user, p.local())
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	p.write(b.String())
}

func (p *rawPeer) waitResponse(timeout time.Duration, method string) *rawMsg {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-p.msgs:
			if strings.HasSuffix(m.get("CSeq"), method) && m.status() >= 200 {
				return m
			}
		case <-deadline:
			p.t.Fatalf("raw peer: no final response to %s within %v", method, timeout)
			return nil
		}
	}
}

func (p *rawPeer) register(registrar, password string) {
	p.t.Helper()
	host, _, _ := net.SplitHostPort(registrar)
	callID := fmt.Sprintf("raw%d@test", rand.IntN(1e9))
	send := func(cseq int, auth string) {
		var b strings.Builder
		fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\n", host)
		fmt.Fprintf(&b, "Via: SIP/2.0/TLS %s;branch=z9hG4bK%d;rport\r\n", p.local(), rand.IntN(1e9))
		fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@%s>;tag=r%d\r\nTo: <sip:%s@%s>\r\n", p.user, host, cseq, p.user, host)
		fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d REGISTER\r\n", callID, cseq)
		fmt.Fprintf(&b, "Contact: <sip:%s@%s;transport=tls>\r\nExpires: 300\r\n", p.user, p.local())
		if auth != "" {
			fmt.Fprintf(&b, "Authorization: %s\r\n", auth)
		}
		b.WriteString("Content-Length: 0\r\n\r\n")
		p.write(b.String())
	}
	send(1, "")
	res := p.waitResponse(5*time.Second, "REGISTER")
	if res.status() == 401 {
		send(2, md5Auth(res.get("WWW-Authenticate"), p.user, password, "REGISTER", "sip:"+host))
		res = p.waitResponse(5*time.Second, "REGISTER")
	}
	if res.status() != 200 {
		p.t.Fatalf("raw peer register %s: %s", p.user, res.start)
	}
}

// invite sends an INVITE with the given SDP to target through the registrar
// and returns the final response (answering one 407 with MD5 digest).
func (p *rawPeer) invite(registrarHost, target, password, sdp string) *rawMsg {
	p.t.Helper()
	callID := fmt.Sprintf("rawinv%d@test", rand.IntN(1e9))
	tag := fmt.Sprintf("f%d", rand.IntN(1e9))
	send := func(cseq int, auth string) {
		var b strings.Builder
		fmt.Fprintf(&b, "INVITE %s SIP/2.0\r\n", target)
		fmt.Fprintf(&b, "Via: SIP/2.0/TLS %s;branch=z9hG4bK%d;rport\r\n", p.local(), rand.IntN(1e9))
		fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@%s>;tag=%s\r\nTo: <%s>\r\n", p.user, registrarHost, tag, target)
		fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d INVITE\r\n", callID, cseq)
		fmt.Fprintf(&b, "Contact: <sip:%s@%s;transport=tls>\r\n", p.user, p.local())
		if auth != "" {
			fmt.Fprintf(&b, "Proxy-Authorization: %s\r\n", auth)
		}
		fmt.Fprintf(&b, "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", len(sdp), sdp)
		p.write(b.String())
	}
	ack := func(cseq int, res *rawMsg) {
		var b strings.Builder
		fmt.Fprintf(&b, "ACK %s SIP/2.0\r\n", target)
		fmt.Fprintf(&b, "Via: %s\r\n", res.all("Via")[0])
		fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d ACK\r\nContent-Length: 0\r\n\r\n",
			res.get("From"), res.get("To"), callID, cseq)
		p.write(b.String())
	}
	send(1, "")
	res := p.waitResponse(10*time.Second, "INVITE")
	if res.status() == 407 {
		ack(1, res)
		send(2, md5Auth(res.get("Proxy-Authenticate"), p.user, password, "INVITE", target))
		res = p.waitResponse(10*time.Second, "INVITE")
		if res.status() >= 300 {
			ack(2, res)
		}
	}
	return res
}

func md5Auth(chal, user, password, method, uri string) string {
	params := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(chal, "Digest "), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		params[k] = strings.Trim(v, `"`)
	}
	h := func(s string) string { x := md5.Sum([]byte(s)); return hex.EncodeToString(x[:]) }
	ha1 := h(user + ":" + params["realm"] + ":" + password)
	ha2 := h(method + ":" + uri)
	cnonce, nc := "0a4f113b", "00000001"
	resp := h(ha1 + ":" + params["nonce"] + ":" + nc + ":" + cnonce + ":auth:" + ha2)
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", qop=auth, nc=%s, cnonce="%s"`,
		user, params["realm"], params["nonce"], uri, resp, nc, cnonce)
}
