package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
)

// tmux drives a terminal program in a detached tmux session of its own.
type tmux struct {
	t       *testing.T
	session string
	sock    string
}

func startTmux(t *testing.T, cmd string) *tmux {
	t.Helper()
	test.RequireTool(t, "tmux")
	m := &tmux{t: t, session: "hp", sock: filepath.Join(t.TempDir(), "tmux.sock")}
	if out, err := exec.Command("tmux", "-S", m.sock, "new-session", "-d", "-s", m.session, "-x", "150", "-y", "40", cmd).CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		// Ends the phone (SIGHUP), then the server; both ours.
		_ = exec.Command("tmux", "-S", m.sock, "kill-server").Run() // already gone is fine
	})
	return m
}

func (m *tmux) keys(keys ...string) {
	m.t.Helper()
	if out, err := exec.Command("tmux", append([]string{"-S", m.sock, "send-keys", "-t", m.session}, keys...)...).CombinedOutput(); err != nil {
		m.t.Fatalf("tmux send-keys %q: %v\n%s", keys, err, out)
	}
}

func (m *tmux) screen() string {
	out, err := exec.Command("tmux", "-S", m.sock, "capture-pane", "-p", "-t", m.session).CombinedOutput()
	if err != nil {
		return "capture-pane: " + err.Error()
	}
	return string(out)
}

// waitScreen waits until the screen shows want.
func (m *tmux) waitScreen(want string, timeout time.Duration) string {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := m.screen()
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("the terminal phone never showed %q; screen:\n%s", want, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTerminalPhone drives `hardphone phone` in tmux the way a person does:
// it runs the agent itself (none was running), shows the registration,
// dials bob from the dial field, hangs up from the calls pane, lists the
// call in the history; calls bob again, holds him and transfers him to
// dave (baresip) from the calls pane, and the history lists both calls;
// then prompts for carol's incoming call, which a key answers, and for
// dave's while carol talks (call waiting), whose answer holds carol. The
// screen then is kept in out/ for the README.
func TestTerminalPhone(t *testing.T) {
	e := newEnv(t)
	bob := e.writeConfig(t, phoneConf{user: "bob", extra: "allow_refer = true\n"})
	startAgentProcess(t, "--config", bob)
	e.k.WaitRegistered(t, "bob", 10*time.Second)
	alice := e.tpmPhone(t, "alice")
	body, err := os.ReadFile(alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alice, []byte(strings.Replace(string(body), "[[account]]\n", "[[account]]\nanswer = \"manual\"\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	hp := hardphoneBinary(t)
	phoneLog := filepath.Join(t.TempDir(), "phone.log")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- hardphone phone log (tail) ---\n%s", tail(readFile(phoneLog), 40))
		}
	})
	m := startTmux(t, hp+" phone --config "+alice+" --log-file "+phoneLog)
	m.waitScreen("registered", 20*time.Second)

	m.keys("sip:bob@"+e.k.IP(), "Enter")
	m.waitScreen("in call with sip:bob@", 20*time.Second)
	m.keys("Tab") // to the calls pane
	m.keys("h")
	m.waitScreen("hung up sip:bob@", 10*time.Second)
	m.waitScreen("out ", 10*time.Second) // the history pane lists the call

	// Call bob again, hold him and transfer him to dave.
	dave := test.StartBaresip(t, test.BaresipKamailio(e.k, "dave"), test.BaresipAnswerMode("auto"))
	dave.WaitRegistered(t, 10*time.Second)
	m.keys("Tab", "Tab", "Tab") // calls -> search -> history -> dial
	m.keys("sip:bob@"+e.k.IP(), "Enter")
	m.waitScreen("in call with sip:bob@", 20*time.Second)
	m.keys("Tab")
	m.keys("o")
	m.waitScreen("(held)", 10*time.Second)
	m.keys("t")
	m.waitScreen("transfer sip:bob@", 10*time.Second)
	m.keys("sip:dave@"+e.k.IP(), "Enter")
	m.waitScreen("to sip:dave@"+e.k.IP()+": done", 20*time.Second)
	dave.WaitEventFunc(t, 10*time.Second, peerIs("CALL_ESTABLISHED", "bob"))
	// Both calls to bob are in the history.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		for _, l := range strings.Split(m.screen(), "\n") {
			if strings.Contains(l, "out ") && strings.Contains(l, "sip:bob@") {
				n++
			}
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history shows %d calls to bob, want 2; screen:\n%s", n, m.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	dave.Hangup(t)

	carol := e.writeConfig(t, phoneConf{user: "carol"})
	call := exec.Command(hp, "call", "--config", carol, "--duration", "10s", "sip:alice@"+e.k.IP())
	done := make(chan error, 1)
	var out strings.Builder
	call.Stdout, call.Stderr = &out, &out
	if err := call.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- call.Wait() }()
	m.waitScreen("Incoming call from", 20*time.Second)
	m.keys("Enter") // Answer is the prompt's first button
	m.waitScreen("answered", 10*time.Second)
	// Call waiting: dave calls while carol talks; answering him holds her.
	dave.Dial(t, "sip:alice@"+e.k.IP())
	m.waitScreen("Call waiting: sip:dave@", 20*time.Second)
	m.keys("Enter")
	dave.WaitEventFunc(t, 10*time.Second, peerIs("CALL_ESTABLISHED", "alice"))
	screen := m.waitScreen("(held)", 10*time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("carol's call: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("carol's call did not end")
	}
	if !strings.Contains(out.String(), `"established":true`) {
		t.Errorf("carol's call summary: %s, want established", out.String())
	}
	dave.Hangup(t)
	if err := os.MkdirAll("../../out", 0o755); err == nil {
		_ = os.WriteFile("../../out/phone-screen.txt", []byte(screen), 0o644) // for the README; a failure here is not the phone's
	}
}
