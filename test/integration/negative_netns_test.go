package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

func TestRefuseRegistrarWithWrongCA(t *testing.T) {
	dir := t.TempDir()
	pki := test.NewPKI(t, filepath.Join(dir, "pki"))
	cert, key := pki.RogueServer("127.0.0.1", net.ParseIP("127.0.0.1"))
	k := test.StartKamailio(t, test.KamailioPKI(pki), test.KamailioUsers(users), test.KamailioCert(cert, key))
	e := &env{k: k, pki: pki, dir: dir}
	p := e.startPhone(t, phoneConf{user: "alice"}, nil)
	msg := p.waitLastError(t, "certificate", 10*time.Second)
	t.Logf("refused: %s", msg)
	if regs := k.Registrations(t); len(regs) != 0 {
		t.Errorf("bindings = %v, want none", regs)
	}
}

func TestRegistrarRefusals(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		pc   phoneConf
		want string
	}{
		{"no client certificate", phoneConf{user: "alice", certCN: "-"}, "tls"},
		{"certificate of another user", phoneConf{user: "alice", certCN: "bob"}, "403"},
		{"wrong password", phoneConf{user: "alice", password: "not-the-password"}, "REGISTER answered"},
		{"md5 challenge under sha-256 floor", phoneConf{user: "alice", digestMin: "SHA-256"}, "below policy minimum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := e.startPhone(t, tt.pc, nil)
			msg := p.waitLastError(t, tt.want, 10*time.Second)
			t.Logf("refused: %s", msg)
		})
	}
}

func TestRegisterSHA256Digest(t *testing.T) {
	e := newEnv(t, test.KamailioDigestAlgorithm("SHA-256"))
	// The default floor is SHA-256: no digest_min in the config.
	p := e.startPhone(t, phoneConf{user: "alice", digestMin: "SHA-256"}, nil)
	p.waitRegistered(t)
	// Kamailio writes its SIP dump asynchronously: poll it.
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(e.k.SIPDump(), "algorithm=SHA-256") })
}

// sdpPlain is an honest-looking plain RTP offer/answer.
func sdpPlain(port int) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n", port)
}

func sdpSDES(port int, suite string) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"+
		"a=crypto:1 %s inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\na=sendrecv\r\n", port, suite)
}

func sdpDTLSNoFingerprint(port int) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d UDP/TLS/RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=setup:active\r\na=sendrecv\r\n", port)
}

// udpSink counts what arrives at a port the answer points our media at.
func udpSink(t *testing.T) (port int, count func() int) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	n := make(chan int, 1)
	n <- 0
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
			v := <-n
			n <- v + 1
		}
	}()
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.UDPAddr).Port, func() int { v := <-n; n <- v; return v }
}

func TestRefuseBadAnswers(t *testing.T) {
	e := newEnv(t)
	mcert, mkey, _ := e.pki.Client("mallory")
	peer := startRawPeer(t, e.k.Addr(), e.pki.CAFile, mcert, mkey, "mallory", users["mallory"])
	e.k.WaitRegistered(t, "mallory", 5*time.Second)
	tests := []struct {
		name     string
		security string
		answer   func(port int) string
	}{
		{"plain RTP answer to SDES offer", "sdes", sdpPlain},
		{"unoffered suite", "sdes", func(p int) string { return sdpSDES(p, "AES_256_CM_HMAC_SHA1_80") }},
		{"NULL cipher suite", "sdes", func(p int) string { return sdpSDES(p, "NULL_HMAC_SHA1_80") }},
		{"plain RTP answer to DTLS offer", "dtls", sdpPlain},
		{"DTLS answer without fingerprint", "dtls", sdpDTLSNoFingerprint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, count := udpSink(t)
			peer.onInv = func(string) (int, string) { return 200, tt.answer(port) }
			p := e.startPhone(t, phoneConf{user: "alice", mediaSecurity: tt.security}, nil)
			p.waitRegistered(t)
			c, err := p.acct.Dial(context.Background(), "sip:mallory@"+e.k.IP(), sip.CallOptions{})
			if !errors.Is(err, sip.ErrInsecureMedia) {
				t.Fatalf("Dial = %v, want ErrInsecureMedia", err)
			}
			t.Logf("refused: %v", err)
			select {
			case <-peer.byes:
			case <-time.After(5 * time.Second):
				t.Fatalf("no BYE reached the peer after a refused answer")
			}
			if c == nil {
				t.Fatalf("Dial returned no call to inspect")
			}
			<-c.Done()
			if st := c.Media().Stats(); st.PacketsSent != 0 {
				t.Errorf("media stats = %+v, want 0 packets sent", st)
			}
			if n := count(); n != 0 {
				t.Errorf("peer's media port received %d packets, want 0", n)
			}
			if !p.acct.Registered() {
				t.Errorf("account lost its registration after a refused answer")
			}
		})
	}
}

func TestRefuseBadOffers(t *testing.T) {
	e := newEnv(t)
	mcert, mkey, _ := e.pki.Client("mallory")
	peer := startRawPeer(t, e.k.Addr(), e.pki.CAFile, mcert, mkey, "mallory", users["mallory"])
	tests := []struct {
		name     string
		security string
		offer    string
	}{
		{"plain RTP offer", "sdes", sdpPlain(30000)},
		{"NULL cipher offer", "sdes", sdpSDES(30000, "NULL_HMAC_SHA1_80")},
		{"DTLS offer without fingerprint", "dtls", sdpDTLSNoFingerprint(30000)},
		{"plain RTP offer to DTLS account", "dtls", sdpPlain(30000)},
	}
	p := map[string]*phone{}
	for _, sec := range []string{"sdes", "dtls"} {
		user := map[string]string{"sdes": "alice", "dtls": "bob"}[sec]
		p[sec] = e.startPhone(t, phoneConf{user: user, mediaSecurity: sec}, nil)
		p[sec].waitRegistered(t)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ph := p[tt.security]
			before := ph.acct.Status().Counters.CallsRefusedMedia
			user := map[string]string{"sdes": "alice", "dtls": "bob"}[tt.security]
			res := peer.invite(e.k.IP(), "sip:"+user+"@"+e.k.IP(), users["mallory"], tt.offer)
			if res.status() != 488 {
				t.Fatalf("INVITE answered %q, want 488", res.start)
			}
			if w := res.get("Warning"); w == "" {
				t.Errorf("488 without a Warning saying why")
			} else {
				t.Logf("488 Warning: %s", w)
			}
			if got := ph.acct.Status().Counters.CallsRefusedMedia; got != before+1 {
				t.Errorf("calls_refused_media = %d, want %d", got, before+1)
			}
			if !ph.acct.Registered() {
				t.Errorf("agent stopped serving after a bad offer")
			}
		})
	}
}

func TestRefuseRequestsFromOthers(t *testing.T) {
	e := newEnv(t)
	p := e.startPhone(t, phoneConf{user: "alice", top: `listen = ["udp:127.0.0.1:5090", "tcp:127.0.0.1:5090"]
listen_peer = "127.0.0.1:5096"`}, nil)
	p.waitRegistered(t)
	options := func(from string, port int) string {
		laddr := &net.UDPAddr{IP: net.ParseIP(from), Port: port}
		c, err := net.DialUDP("udp", laddr, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5090})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		local := c.LocalAddr().String()
		msg := "OPTIONS sip:alice@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bKopt" + from +
			"\r\nMax-Forwards: 70\r\nFrom: <sip:x@" + from + ">;tag=1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: opt" + from +
			"\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if err := c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			return "no answer: " + err.Error()
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		return line
	}
	if got := options("127.0.0.2", 5096); !strings.HasPrefix(got, "SIP/2.0 403") {
		t.Errorf("OPTIONS from 127.0.0.2 = %q, want 403", got)
	}
	// The peer's IP is not enough: one spoofed datagram has it.
	if got := options("127.0.0.1", 0); !strings.HasPrefix(got, "SIP/2.0 403") {
		t.Errorf("OPTIONS from the peer's IP, another port = %q, want 403", got)
	}
	if got := options("127.0.0.1", 5096); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Errorf("OPTIONS from listen_peer = %q, want 200", got)
	}
	if n := p.acct.Status().Counters.ForeignSource; n < 1 {
		t.Errorf("foreign_source = %d, want >= 1", n)
	}
}

// TestCallCommandFailsWithoutSRTP: `hardphone call` exits non-zero, with
// the reason in its JSON line, when the peer answers with plain RTP.
func TestCallCommandFailsWithoutSRTP(t *testing.T) {
	e := newEnv(t)
	mcert, mkey, _ := e.pki.Client("mallory")
	peer := startRawPeer(t, e.k.Addr(), e.pki.CAFile, mcert, mkey, "mallory", users["mallory"])
	port, count := udpSink(t)
	peer.onInv = func(string) (int, string) { return 200, sdpPlain(port) }
	cfg := e.writeConfig(t, phoneConf{user: "alice"})
	var out bytes.Buffer
	cmd := exec.Command(hardphoneBinary(t), "call", "--config", cfg, "--duration", "2s", "sip:mallory@"+e.k.IP())
	cmd.Stdout = &out
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("hardphone call = %v, want exit status 1", err)
	}
	var sum struct {
		Established bool   `json:"established"`
		SRTP        bool   `json:"srtp"`
		Error       string `json:"error"`
	}
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("summary %q: %v", out.String(), err)
	}
	if sum.Established || sum.SRTP || !strings.Contains(sum.Error, "SRTP is mandatory") {
		t.Errorf("summary = %+v, want not established with the SRTP reason", sum)
	}
	if n := count(); n != 0 {
		t.Errorf("peer's media port received %d packets, want 0", n)
	}
}
