package test

import (
	"bufio"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SIPUA is a minimal SIP user agent for tests: it registers with a digest
// password (RFC 7616, qop=auth, MD5 or SHA-256 as the challenge asks) over
// UDP or TLS and reads what the registrar sends it on the same flow. Only
// what the fleet tests need; the phone's own SIP stack is agent/sip.
type SIPUA struct {
	conn      net.Conn
	rd        *bufio.Reader // TLS: the stream
	transport string        // "UDP" or "TLS"
	user      string
	domain    string
	callID    string
	cseq      int
}

// DialSIPUA connects a user agent for user@domain to the registrar at
// addr over transport ("UDP" or "TLS"; the registrar's certificate is not
// what these tests check, so it is not verified).
func DialSIPUA(t testing.TB, transport, addr, user, domain string) *SIPUA {
	t.Helper()
	u := &SIPUA{transport: transport, user: user, domain: domain, callID: sipRandHex(8)}
	var err error
	switch transport {
	case "UDP":
		u.conn, err = net.Dial("udp", addr)
	case "TLS":
		u.conn, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // the test registrar's certificate is not what is tested
		if err == nil {
			u.rd = bufio.NewReader(u.conn)
		}
	}
	if err != nil {
		t.Fatalf("dial %s %s: %v", transport, addr, err)
	}
	t.Cleanup(func() { u.conn.Close() })
	return u
}

func sipRandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// UAMessage is a parsed SIP message.
type UAMessage struct {
	// First is the request or status line, Header the first value of each
	// header by lower-case name, Raw the whole message.
	First  string
	Header map[string]string
	Raw    string
}

// Status is a response's status code, 0 for a request.
func (m UAMessage) Status() int {
	f := strings.Fields(m.First)
	if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/") {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// Read returns the next message the registrar sends.
func (u *SIPUA) Read(t testing.TB, timeout time.Duration) UAMessage {
	t.Helper()
	u.conn.SetReadDeadline(time.Now().Add(timeout))
	var raw string
	if u.transport == "UDP" {
		b := make([]byte, 65536)
		n, err := u.conn.Read(b)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		raw = string(b[:n])
	} else {
		var head strings.Builder
		for {
			line, err := u.rd.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if line == "\r\n" && head.Len() == 0 {
				continue // keep-alive CRLF
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		raw = head.String()
		m := parseUAMessage(raw)
		if n, _ := strconv.Atoi(m.Header["content-length"]); n > 0 {
			body := make([]byte, n)
			if _, err := io.ReadFull(u.rd, body); err != nil {
				t.Fatalf("read body: %v", err)
			}
			raw += string(body)
		}
	}
	return parseUAMessage(raw)
}

func parseUAMessage(raw string) UAMessage {
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	m := UAMessage{First: lines[0], Header: map[string]string{}, Raw: raw}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if _, seen := m.Header[k]; !seen {
			m.Header[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func (u *SIPUA) send(t testing.TB, s string) {
	t.Helper()
	if _, err := u.conn.Write([]byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

var digestParam = regexp.MustCompile(`(\w+)=("([^"]*)"|[^,\s]+)`)

func digestParams(h string) map[string]string {
	out := map[string]string{}
	for _, m := range digestParam.FindAllStringSubmatch(strings.TrimPrefix(h, "Digest "), -1) {
		v := m[2]
		if m[3] != "" || strings.HasPrefix(v, `"`) {
			v = m[3]
		}
		out[strings.ToLower(m[1])] = v
	}
	return out
}

// Register sends REGISTER, answers the challenge with password, and
// returns the final status.
func (u *SIPUA) Register(t testing.TB, password string) int {
	t.Helper()
	uri := "sip:" + u.domain
	req := func(auth string) string {
		u.cseq++
		local := u.conn.LocalAddr().String()
		tr := strings.ToLower(u.transport)
		s := "REGISTER " + uri + " SIP/2.0\r\n" +
			"Via: SIP/2.0/" + u.transport + " " + local + ";branch=z9hG4bK" + sipRandHex(8) + ";rport\r\n" +
			"Max-Forwards: 70\r\n" +
			"From: <sip:" + u.user + "@" + u.domain + ">;tag=" + sipRandHex(4) + "\r\n" +
			"To: <sip:" + u.user + "@" + u.domain + ">\r\n" +
			"Call-ID: " + u.callID + "\r\n" +
			"CSeq: " + strconv.Itoa(u.cseq) + " REGISTER\r\n" +
			"Contact: <sip:" + u.user + "@" + local + ";transport=" + tr + ">\r\n" +
			"Expires: 300\r\n"
		if auth != "" {
			s += "Authorization: " + auth + "\r\n"
		}
		return s + "Content-Length: 0\r\n\r\n"
	}
	u.send(t, req(""))
	m := u.Read(t, 5*time.Second)
	if m.Status() != 401 {
		return m.Status()
	}
	p := digestParams(m.Header["www-authenticate"])
	alg := p["algorithm"]
	var h func() hash.Hash
	switch alg {
	case "", "MD5":
		h = md5.New
	case "SHA-256":
		h = sha256.New
	default:
		t.Fatalf("challenge algorithm %q", alg)
	}
	hx := func(s string) string { x := h(); x.Write([]byte(s)); return hex.EncodeToString(x.Sum(nil)) }
	cnonce, nc := sipRandHex(8), "00000001"
	ha1 := hx(u.user + ":" + p["realm"] + ":" + password)
	ha2 := hx("REGISTER:" + uri)
	resp := hx(ha1 + ":" + p["nonce"] + ":" + nc + ":" + cnonce + ":auth:" + ha2)
	auth := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", qop=auth, nc=%s, cnonce="%s"`,
		u.user, p["realm"], p["nonce"], uri, resp, nc, cnonce)
	if alg != "" {
		auth += ", algorithm=" + alg
	}
	u.send(t, req(auth))
	return u.Read(t, 5*time.Second).Status()
}

// Answer replies 200 OK to a request the registrar sent.
func (u *SIPUA) Answer(t testing.TB, m UAMessage) {
	t.Helper()
	var b strings.Builder
	b.WriteString("SIP/2.0 200 OK\r\n")
	for _, l := range strings.Split(strings.SplitN(m.Raw, "\r\n\r\n", 2)[0], "\r\n")[1:] {
		k, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "via", "from", "call-id", "cseq":
			b.WriteString(l + "\r\n")
		case "to":
			b.WriteString(l + ";tag=" + sipRandHex(4) + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	u.send(t, b.String())
}
