package test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { RunInNetns(m) }

const (
	toneHz    = 440
	controlHz = 1000
	// rtpPCMU20ms is the UDP payload of a 20 ms PCMU packet in plain RTP:
	// 12-byte header and 160 samples.
	rtpPCMU20ms = 172
)

func TestNetns(t *testing.T) {
	requireNetns(t)
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatalf("net.Interfaces() error %v", err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
		if i.Name == "lo" && i.Flags&net.FlagUp == 0 {
			t.Fatalf("lo is down in the test namespace")
		}
	}
	// A fresh namespace holds only lo; anything else means the host's.
	if len(names) != 1 || names[0] != "lo" {
		t.Fatalf("interfaces = %v, want [lo]", names)
	}
}

func TestPKI(t *testing.T) {
	p := NewPKI(t, t.TempDir())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(readFile(p.CAFile)))

	srvCert, srvKey := p.Server("registrar.test", net.ParseIP("127.0.0.1"))
	cliCert, cliKey, combined := p.Client("alice")
	rogueCert, rogueKey := p.RogueServer("registrar.test", net.ParseIP("127.0.0.1"))

	for _, f := range []string{srvKey, cliKey, rogueKey, combined} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatalf("Stat(%s) error %v", f, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode of %s = %v, want 0600", f, fi.Mode().Perm())
		}
		if !strings.Contains(readFile(f), "-----BEGIN PRIVATE KEY-----") {
			t.Errorf("%s holds no PKCS#8 key", f)
		}
	}
	tests := []struct {
		name      string
		cert, key string
		usage     x509.ExtKeyUsage
		dnsName   string
		wantValid bool
	}{
		{"server", srvCert, srvKey, x509.ExtKeyUsageServerAuth, "registrar.test", true},
		{"server by IP", srvCert, srvKey, x509.ExtKeyUsageServerAuth, "127.0.0.1", true},
		{"client", cliCert, cliKey, x509.ExtKeyUsageClientAuth, "", true},
		{"client as server", cliCert, cliKey, x509.ExtKeyUsageServerAuth, "", false},
		{"rogue server", rogueCert, rogueKey, x509.ExtKeyUsageServerAuth, "registrar.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair, err := tls.LoadX509KeyPair(tt.cert, tt.key)
			if err != nil {
				t.Fatalf("LoadX509KeyPair error %v", err)
			}
			_, err = pair.Leaf.Verify(x509.VerifyOptions{
				DNSName:   tt.dnsName,
				Roots:     pool,
				KeyUsages: []x509.ExtKeyUsage{tt.usage},
			})
			if (err == nil) != tt.wantValid {
				t.Fatalf("Verify() error %v, want valid %v", err, tt.wantValid)
			}
		})
	}
	leaf, err := tls.LoadX509KeyPair(combined, combined)
	if err != nil {
		t.Fatalf("LoadX509KeyPair(combined) error %v", err)
	}
	if cn := leaf.Leaf.Subject.CommonName; cn != "alice" {
		t.Fatalf("client CN = %q, want alice", cn)
	}
}

func TestTone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tone.wav")
	WriteToneWAV(t, path, toneHz, time.Second, 8000)
	samples, rate, err := ReadWAV(path)
	if err != nil {
		t.Fatalf("ReadWAV error %v", err)
	}
	if rate != 8000 || len(samples) != 8000 {
		t.Fatalf("ReadWAV = %d samples at %d Hz, want 8000 at 8000", len(samples), rate)
	}
	if r := DetectTone(samples, rate, toneHz); r < 0.99 {
		t.Errorf("DetectTone(tone, %d) = %.4f, want >= 0.99", toneHz, r)
	}
	if r := DetectTone(samples, rate, controlHz); r > 0.01 {
		t.Errorf("DetectTone(tone, %d) = %.4f, want <= 0.01", controlHz, r)
	}
	if r := DetectTone(make([]int16, 8000), rate, toneHz); r != 0 {
		t.Errorf("DetectTone(silence) = %v, want 0", r)
	}
}

func TestCapture(t *testing.T) {
	for _, iface := range []string{"lo", "any"} {
		t.Run(iface, func(t *testing.T) {
			sink, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatalf("ListenPacket error %v", err)
			}
			defer sink.Close()
			port := sink.LocalAddr().(*net.UDPAddr).Port
			c := StartCapture(t, iface, fmt.Sprintf("udp dst port %d", port))
			conn, err := net.Dial("udp", sink.LocalAddr().String())
			if err != nil {
				t.Fatalf("Dial error %v", err)
			}
			defer conn.Close()
			want := []string{"one", "two", "three"}
			for _, w := range want {
				if _, err := conn.Write([]byte(w)); err != nil {
					t.Fatalf("Write error %v", err)
				}
			}
			c.WaitFor(t, 5*time.Second, func(p []CapturedPacket) bool { return len(p) >= len(want) })
			c.Stop(t)
			pkts := c.Packets(t)
			if len(pkts) != len(want) {
				t.Fatalf("Packets() = %d packets, want %d:\n%s", len(pkts), len(want), c.Summary(t))
			}
			for i, p := range pkts {
				if p.Proto != "udp" || int(p.DstPort) != port || string(p.Payload) != want[i] || !p.Src.IsLoopback() {
					t.Errorf("packet %d = %v %q, want udp to port %d %q", i, p, p.Payload, port, want[i])
				}
			}
		})
	}
}

// TestBaresipCall proves the harness end to end: two baresip UAs register
// over TLS with client certificates, alice calls bob through Kamailio, bob
// auto-answers, media is SRTP, and alice's 440 Hz tone is in bob's
// recording but not in the clear on the wire.
func TestBaresipCall(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	tests := []struct {
		menc string
		// wantMENC is the param of the CALL_MENC event that says the RTP
		// stream is secure.
		wantMENC string
		// bobHangsUp makes the callee send the BYE, so that in-dialog
		// routing is proven both ways.
		bobHangsUp bool
	}{
		{"srtp-mand", "0,audio,AES_CM_128_HMAC_SHA1_80", false},
		{"dtls_srtp", "0,audio,RTP", true},
	}
	for _, tt := range tests {
		t.Run(tt.menc, func(t *testing.T) {
			k := StartKamailio(t, KamailioUsers(map[string]string{"alice": "alice-pw", "bob": "bob-pw"}))
			tone := filepath.Join(t.TempDir(), "tone.wav")
			WriteToneWAV(t, tone, toneHz, 30*time.Second, 8000)
			alice := StartBaresip(t, BaresipKamailio(k, "alice"), BaresipMediaEnc(tt.menc), BaresipAudioSource(tone))
			bob := StartBaresip(t, BaresipKamailio(k, "bob"), BaresipMediaEnc(tt.menc), BaresipRecordDir(t.TempDir()))
			for _, user := range []string{"alice", "bob"} {
				if r := k.WaitRegistered(t, user, 5*time.Second); !strings.HasPrefix(r.Socket, "tls:") {
					t.Fatalf("%s registered on %q, want a tls: socket", user, r.Socket)
				}
			}

			aLo, aHi := alice.RTPPorts()
			bLo, bHi := bob.RTPPorts()
			capture := StartCapture(t, "lo", fmt.Sprintf("udp and (portrange %d-%d or portrange %d-%d)", aLo, aHi, bLo, bHi))
			toBob := func(p CapturedPacket) bool {
				return p.Proto == "udp" && int(p.DstPort) >= bLo && int(p.DstPort) <= bHi && isRTPShaped(p.Payload)
			}

			start := time.Now()
			alice.Dial(t, bob.AoR())
			est := alice.WaitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
			setup := est.At.Sub(start)
			bob.WaitEvent(t, "CALL_ESTABLISHED", 5*time.Second)
			for _, ua := range []*Baresip{alice, bob} {
				// DTLS-SRTP reports RTP and RTCP separately, in either order.
				ev := ua.WaitEventFunc(t, 10*time.Second, func(ev Event) bool {
					return ev.Type == "CALL_MENC" && ev.Param == tt.wantMENC
				})
				if ua == alice {
					t.Logf("baresip->baresip %s: call setup (dial to CALL_ESTABLISHED) %v, media secure (CALL_MENC) %v",
						tt.menc, setup.Round(time.Microsecond), ev.At.Sub(start).Round(time.Microsecond))
				}
			}
			// 1.5 s of media towards bob, counted on the wire.
			capture.WaitFor(t, 10*time.Second, func(pkts []CapturedPacket) bool {
				n := 0
				for _, p := range pkts {
					if toBob(p) {
						n++
					}
				}
				return n >= 75
			})
			if tt.bobHangsUp {
				bob.Hangup(t)
			} else {
				alice.Hangup(t)
			}
			alice.WaitEvent(t, "CALL_CLOSED", 5*time.Second)
			bob.WaitEvent(t, "CALL_CLOSED", 5*time.Second)
			capture.Stop(t)

			var media []byte
			sizes := map[int]int{}
			for _, p := range capture.Packets(t) {
				if !toBob(p) {
					continue
				}
				sizes[len(p.Payload)]++
				if len(p.Payload) >= rtpPCMU20ms {
					media = append(media, p.Payload[12:rtpPCMU20ms]...)
				}
			}
			if len(media) < 75*(rtpPCMU20ms-12) {
				t.Fatalf("%d bytes of media to bob captured, want >= 1.5 s (sizes %v)", len(media), sizes)
			}
			if sizes[rtpPCMU20ms] != 0 {
				t.Errorf("%d packets to bob of plain PCMU RTP size %d, want none (sizes %v)", sizes[rtpPCMU20ms], rtpPCMU20ms, sizes)
			}
			if r := DetectTone(decodeULaw(media), 8000, toneHz); r > 0.05 {
				t.Errorf("tone detected in RTP payloads on the wire: ratio %.3f, want <= 0.05", r)
			}

			var dec string
			for _, f := range bob.RecordedWAVs() {
				if strings.HasSuffix(f, "-dec.wav") {
					dec = f
				}
			}
			if dec == "" {
				t.Fatalf("bob recorded %v, want a -dec.wav", bob.RecordedWAVs())
			}
			samples, rate, err := ReadWAV(dec)
			if err != nil {
				t.Fatalf("ReadWAV error %v", err)
			}
			if len(samples) < rate {
				t.Fatalf("bob recorded %d samples at %d Hz, want >= 1 s", len(samples), rate)
			}
			share, other := DetectTone(samples, rate, toneHz), DetectTone(samples, rate, controlHz)
			t.Logf("bob's recording: %.2f s, %d Hz share %.4f, %d Hz share %.6f",
				float64(len(samples))/float64(rate), toneHz, share, controlHz, other)
			if share < 0.9 || other > 0.01 {
				t.Fatalf("DetectTone(bob's recording) = %.4f at %d Hz and %.4f at %d Hz, want >= 0.9 and <= 0.01",
					share, toneHz, other, controlHz)
			}
		})
	}
}

// TestClientCertRefused proves Kamailio refuses a UA whose client
// certificate does not belong to its user.
func TestClientCertRefused(t *testing.T) {
	k := StartKamailio(t, KamailioUsers(map[string]string{"alice": "alice-pw", "mallory": "mallory-pw"}))
	_, _, mallory := k.PKI().Client("mallory")
	_, _, rogue := k.PKI().RogueClient("alice")
	tests := []struct {
		name string
		cert string
		// refused waits until Kamailio has refused the UA.
		refused func(t *testing.T, ua *Baresip)
	}{
		{"CN is another user", mallory, func(t *testing.T, ua *Baresip) {
			ev := ua.WaitEvent(t, "REGISTER_FAIL", 10*time.Second)
			if !strings.HasPrefix(ev.Param, "403 ") {
				t.Fatalf("REGISTER_FAIL param = %q, want a 403", ev.Param)
			}
		}},
		// The TLS handshake fails at Kamailio, but baresip 1.0 reports
		// nothing until its transaction times out after 32 s.
		{"rogue CA", rogue, func(t *testing.T, ua *Baresip) {
			k.WaitLog(t, "certificate verify failed", 10*time.Second)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ua := StartBaresip(t, BaresipKamailio(k, "alice"), BaresipCertificate(tt.cert), BaresipNoRegisterWait())
			tt.refused(t, ua)
			for _, ev := range ua.Events() {
				if ev.Type == "REGISTER_OK" {
					t.Fatalf("baresip got %s", ev.Raw)
				}
			}
			if regs := k.Registrations(t); len(regs) != 0 {
				t.Fatalf("Registrations() = %v, want none", regs)
			}
		})
	}
}

const sippRegister = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register with digest">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]>;tag=[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Expires: 300
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]>;tag=[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port]>
      [authentication]
      Max-Forwards: 70
      Expires: 300
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
`

// TestSIPpRegister proves the plain UDP listener and the SIPp wrapper:
// SIPp registers with MD5 digest.
func TestSIPpRegister(t *testing.T) {
	k := StartKamailio(t, KamailioUsers(map[string]string{"carol": "carol-pw"}), KamailioPlainPort(0))
	sf := WriteScenario(t, "register", sippRegister)
	host, port, err := net.SplitHostPort(k.PlainAddr())
	if err != nil {
		t.Fatalf("PlainAddr() = %q: %v", k.PlainAddr(), err)
	}
	res := RunSIPp(t, "-sf", sf, "-t", "u1", "-i", host, "-s", "carol", "-au", "carol", "-ap", "carol-pw",
		"-m", "1", "-timeout", "10s", "-timeout_error", net.JoinHostPort(host, port))
	if res.ExitCode != 0 {
		t.Fatalf("sipp exit %d, want 0\n%s\n--- sipdump ---\n%s", res.ExitCode, res.Output, k.SIPDump())
	}
	if r := k.WaitRegistered(t, "carol", 5*time.Second); !strings.HasPrefix(r.Socket, "udp:") {
		t.Fatalf("carol registered on %q, want a udp: socket", r.Socket)
	}
}

// isRTPShaped reports whether b starts like an RTP or SRTP packet of PCMU or
// PCMA (version 2, payload type 0 or 8): SRTP leaves the header in the
// clear.
func isRTPShaped(b []byte) bool {
	return len(b) >= 12 && b[0]>>6 == 2 && (b[1]&0x7f == 0 || b[1]&0x7f == 8)
}

// decodeULaw expands G.711 µ-law bytes to linear PCM (ITU-T G.711 §2).
func decodeULaw(b []byte) []int16 {
	out := make([]int16, len(b))
	for i, c := range b {
		u := ^c
		t := (int(u&0x0f) << 3) + 0x84
		t <<= (u & 0x70) >> 4
		if u&0x80 != 0 {
			out[i] = int16(0x84 - t)
		} else {
			out[i] = int16(t - 0x84)
		}
	}
	return out
}

// TestCallNotRegistered proves Kamailio answers 404 to a call to a user with
// no binding.
func TestCallNotRegistered(t *testing.T) {
	k := StartKamailio(t, KamailioUsers(map[string]string{"alice": "alice-pw", "bob": "bob-pw"}))
	alice := StartBaresip(t, BaresipKamailio(k, "alice"))
	// StartBaresip waited already; a second wait returns at once.
	alice.WaitRegistered(t, time.Second)
	alice.Dial(t, "sip:bob@"+k.IP())
	ev := alice.WaitEvent(t, "CALL_CLOSED", 10*time.Second)
	if !strings.Contains(ev.Param, "404") {
		t.Fatalf("CALL_CLOSED param = %q, want a 404", ev.Param)
	}
}

// TestDigestAlgorithm proves KamailioDigestAlgorithm by reading the
// challenge to a REGISTER sent over UDP.
func TestDigestAlgorithm(t *testing.T) {
	tests := []struct {
		alg  string
		want string // in WWW-Authenticate
		not  string // not in WWW-Authenticate
	}{
		// RFC 2617 §3.2.1: "If this is not present it is assumed to be
		// MD5".
		{"MD5", `qop="auth"`, "algorithm="},
		{"SHA-256", "algorithm=SHA-256", "MD5"},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			k := StartKamailio(t, KamailioUsers(map[string]string{"carol": "carol-pw"}),
				KamailioDigestAlgorithm(tt.alg), KamailioPlainPort(0))
			conn, err := net.Dial("udp", k.PlainAddr())
			if err != nil {
				t.Fatalf("Dial error %v", err)
			}
			defer conn.Close()
			local := conn.LocalAddr().String()
			req := "REGISTER sip:" + k.IP() + " SIP/2.0\r\n" +
				"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + tt.alg + ";rport\r\n" +
				"From: <sip:carol@" + k.IP() + ">;tag=1\r\n" +
				"To: <sip:carol@" + k.IP() + ">\r\n" +
				"Call-ID: digest-" + tt.alg + "\r\n" +
				"CSeq: 1 REGISTER\r\n" +
				"Contact: <sip:carol@" + local + ">\r\n" +
				"Max-Forwards: 70\r\n" +
				"Content-Length: 0\r\n\r\n"
			if _, err := conn.Write([]byte(req)); err != nil {
				t.Fatalf("Write error %v", err)
			}
			if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatalf("SetReadDeadline error %v", err)
			}
			buf := make([]byte, 4096)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("Read error %v\n--- sipdump ---\n%s", err, k.SIPDump())
			}
			resp := string(buf[:n])
			var challenge string
			for _, line := range strings.Split(resp, "\r\n") {
				if strings.HasPrefix(line, "WWW-Authenticate:") {
					challenge = line
				}
			}
			if !strings.HasPrefix(resp, "SIP/2.0 401 ") || !strings.Contains(challenge, tt.want) || strings.Contains(challenge, tt.not) {
				t.Fatalf("challenge = %q, want a 401 with %q and without %q\n%s", challenge, tt.want, tt.not, resp)
			}
		})
	}
}
