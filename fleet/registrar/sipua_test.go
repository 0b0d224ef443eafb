package registrar

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

// ua is a minimal SIP user agent for the tests: it registers with a digest
// password (RFC 7616, qop=auth) over UDP or TLS and reads what the
// registrar sends it. Only what the tests need.
type ua struct {
	conn      net.Conn
	rd        *bufio.Reader // TLS: the stream
	transport string        // "UDP" or "TLS"
	user      string
	domain    string
	callID    string
	cseq      int
}

func dialUA(t *testing.T, transport, addr, user, domain string) *ua {
	t.Helper()
	u := &ua{transport: transport, user: user, domain: domain, callID: randHex(8)}
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

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// msg is a parsed SIP message.
type msg struct {
	first string
	hdr   map[string]string // lower-case name -> first value
	raw   string
}

func (m msg) status() int {
	f := strings.Fields(m.first)
	if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/") {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func (u *ua) read(t *testing.T, timeout time.Duration) msg {
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
		m := parseMsg(raw)
		if n, _ := strconv.Atoi(m.hdr["content-length"]); n > 0 {
			body := make([]byte, n)
			if _, err := io.ReadFull(u.rd, body); err != nil {
				t.Fatalf("read body: %v", err)
			}
			raw += string(body)
		}
	}
	return parseMsg(raw)
}

func parseMsg(raw string) msg {
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	m := msg{first: lines[0], hdr: map[string]string{}, raw: raw}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if _, seen := m.hdr[k]; !seen {
			m.hdr[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func (u *ua) send(t *testing.T, s string) {
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

// register sends REGISTER, answers the challenge with password, and
// returns the final status.
func (u *ua) register(t *testing.T, password string) int {
	t.Helper()
	uri := "sip:" + u.domain
	req := func(auth string) string {
		u.cseq++
		local := u.conn.LocalAddr().String()
		tr := strings.ToLower(u.transport)
		s := "REGISTER " + uri + " SIP/2.0\r\n" +
			"Via: SIP/2.0/" + u.transport + " " + local + ";branch=z9hG4bK" + randHex(8) + ";rport\r\n" +
			"Max-Forwards: 70\r\n" +
			"From: <sip:" + u.user + "@" + u.domain + ">;tag=" + randHex(4) + "\r\n" +
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
	m := u.read(t, 5*time.Second)
	if m.status() != 401 {
		return m.status()
	}
	p := digestParams(m.hdr["www-authenticate"])
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
	cnonce, nc := randHex(8), "00000001"
	ha1 := hx(u.user + ":" + p["realm"] + ":" + password)
	ha2 := hx("REGISTER:" + uri)
	resp := hx(ha1 + ":" + p["nonce"] + ":" + nc + ":" + cnonce + ":auth:" + ha2)
	auth := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", qop=auth, nc=%s, cnonce="%s"`,
		u.user, p["realm"], p["nonce"], uri, resp, nc, cnonce)
	if alg != "" {
		auth += ", algorithm=" + alg
	}
	u.send(t, req(auth))
	return u.read(t, 5*time.Second).status()
}

// answer replies 200 OK to a request the registrar sent.
func (u *ua) answer(t *testing.T, m msg) {
	t.Helper()
	var b strings.Builder
	b.WriteString("SIP/2.0 200 OK\r\n")
	for _, l := range strings.Split(strings.SplitN(m.raw, "\r\n\r\n", 2)[0], "\r\n")[1:] {
		k, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "via", "from", "call-id", "cseq":
			b.WriteString(l + "\r\n")
		case "to":
			b.WriteString(l + ";tag=" + randHex(4) + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	u.send(t, b.String())
}
