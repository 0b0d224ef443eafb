package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

// hostileRealm is the realm the hostile registrar challenges REGISTER
// with, which the phone pins.
const hostileRealm = "hostile.test"

// TestAttackDigestChallenges: a 407 to the phone's INVITE is answered only
// for the registrar's realm with qop=auth. A callee (a proxy relays its
// challenge) asking for another realm, the RFC 2069 form or auth-int only
// gets no Authorization: the call fails with an error that says why.
func TestAttackDigestChallenges(t *testing.T) {
	e := newHostileEnv(t, test.HostileChallenge(hostileRealm, users))
	p, f := hostilePhone(t, e, phoneConf{})
	for _, tt := range []struct {
		name, challenge, want string
	}{
		{"foreign realm", `Digest realm="evil.example", nonce="n1", qop="auth", algorithm=SHA-256`, "realm"},
		{"no qop (RFC 2069)", `Digest realm="` + hostileRealm + `", nonce="n2", algorithm=SHA-256`, "qop"},
		{"auth-int only", `Digest realm="` + hostileRealm + `", nonce="n3", qop="auth-int", algorithm=SHA-256`, "qop"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			errc := make(chan error, 1)
			go func() {
				c, err := p.acct.Dial(context.Background(), "sip:bob@"+hostileRealm, sip.CallOptions{})
				if c != nil {
					c.Hangup(context.Background())
				}
				errc <- err
			}()
			inv := f.Next(t, 10*time.Second, func(m *test.SIPMessage) bool { return m.IsRequest() && m.Method() == "INVITE" })
			respond(t, f, inv, 407, "Proxy Authentication Required", "chal", "", "Proxy-Authenticate: "+tt.challenge)
			var err error
			select {
			case err = <-errc:
			case <-time.After(15 * time.Second):
				t.Fatalf("Dial did not return after a %s challenge; the phone sent:%s", tt.name, summary(f))
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Dial = %v, want an error naming %q", err, tt.want)
			}
			for _, m := range f.Messages() {
				if m.Get("Call-ID") == inv.Get("Call-ID") && (m.Get("Proxy-Authorization") != "" || m.Get("Authorization") != "") {
					t.Errorf("phone answered the %s challenge:\n%s", tt.name, strings.Join(m.Headers, "\n"))
				}
			}
			t.Logf("refused: %v", err)
		})
	}
	// The registrar's own challenge (its realm, qop=auth) is answered.
	legit := newSRTPPeer(t)
	errc := make(chan error, 1)
	var call *sip.Call
	go func() {
		var err error
		call, err = p.acct.Dial(context.Background(), "sip:bob@"+hostileRealm, sip.CallOptions{})
		errc <- err
	}()
	inv := f.Next(t, 10*time.Second, func(m *test.SIPMessage) bool { return m.IsRequest() && m.Method() == "INVITE" })
	respond(t, f, inv, 407, "Proxy Authentication Required", "chal", "",
		`Proxy-Authenticate: Digest realm="`+hostileRealm+`", nonce="good", qop="auth", algorithm=SHA-256`)
	auth := f.Next(t, 10*time.Second, func(m *test.SIPMessage) bool {
		return m.IsRequest() && m.Method() == "INVITE" && m.Get("Proxy-Authorization") != ""
	})
	if got := test.DigestParams(auth.Get("Proxy-Authorization")); got["realm"] != hostileRealm || got["qop"] != "auth" {
		t.Errorf("Proxy-Authorization %v, want realm %s, qop=auth", got, hostileRealm)
	}
	respond(t, f, auth, 200, "OK", "callee", legit.answer(t, auth.Body))
	if err := <-errc; err != nil {
		t.Fatalf("Dial after the registrar's challenge: %v", err)
	}
	call.Hangup(context.Background())
}

func summary(f *test.HostileFlow) string {
	var b strings.Builder
	for _, m := range f.Messages() {
		b.WriteString("\n  " + m.Start)
	}
	return b.String()
}

// TestCallCommandRefusedChallenge: `hardphone call` prints the refused
// challenge as its error and exits 1.
func TestCallCommandRefusedChallenge(t *testing.T) {
	e := newHostileEnv(t, test.HostileChallenge(hostileRealm, users))
	cfg := e.writeConfig(t, phoneConf{user: "alice", mediaSecurity: "sdes"})
	var out bytes.Buffer
	cmd := exec.Command(hardphoneBinary(t), "call", "--config", cfg, "--duration", "2s", "sip:bob@"+hostileRealm)
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	f := e.hostile.Flow(t, 15*time.Second)
	inv := f.Next(t, 15*time.Second, func(m *test.SIPMessage) bool { return m.IsRequest() && m.Method() == "INVITE" })
	respond(t, f, inv, 407, "Proxy Authentication Required", "chal", "",
		`Proxy-Authenticate: Digest realm="evil.example", nonce="n1", qop="auth", algorithm=SHA-256`)
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		if perr := cmd.Process.Kill(); perr != nil {
			t.Logf("kill: %v", perr)
		}
		<-done
		t.Fatalf("hardphone call did not end after a foreign-realm challenge; the phone sent:%s", summary(f))
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("hardphone call = %v, want exit status 1; output %s", err, out.String())
	}
	var sum struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("summary %q: %v", out.String(), err)
	}
	if !strings.Contains(sum.Error, "realm") {
		t.Errorf("error = %q, want one naming the refused realm", sum.Error)
	}
	for _, m := range f.Messages() {
		if m.Get("Proxy-Authorization") != "" {
			t.Errorf("phone answered the foreign challenge")
		}
	}
}
