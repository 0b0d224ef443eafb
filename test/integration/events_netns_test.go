package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardphone/hardphone/system"
	"github.com/hardphone/hardphone/test"
)

// TestSecurityEventsJournal: a caller of another uid refused on the control
// socket becomes a signed, hash-chained journal record that `hardphone
// events` lists through the running agent, and `--verify` proves the
// journal both through the agent and, once it stopped, from the state file.
func TestSecurityEventsJournal(t *testing.T) {
	e := newEnv(t)
	sw := test.StartSWTPM(t)
	path := e.writeConfig(t, phoneConf{user: "alice", certCN: "-", credStore: sw.Spec})
	dir := filepath.Dir(path)
	stateDir := filepath.Join(dir, "state")
	creds, err := system.OpenCredentials(system.CredentialSpec{StateDir: stateDir, Protector: sw.Spec}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.pki.EnrolIdentity(creds, "alice")
	if err := creds.Put("sip/alice", []byte(users["alice"])); err != nil {
		t.Fatal(err)
	}
	if err := creds.Close(); err != nil {
		t.Fatal(err)
	}
	// A socket another user could reach if the kernel's credential check
	// were not there: in an open directory, made world-accessible below.
	open := t.TempDir()
	for _, d := range []string{filepath.Dir(open), filepath.Dir(dir), dir, open} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	socket := filepath.Join(open, "run", "ctl.sock")
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(body), `control_socket = "ctl.sock"`, `control_socket = "`+socket+`"`, 1)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	agentProc := startAgentProcess(t, "--config", path)
	e.k.WaitRegistered(t, "alice", 10*time.Second)
	waitFor(t, 10*time.Second, func() bool { _, err := os.Stat(socket); return err == nil })
	for _, p := range []string{filepath.Dir(socket), socket} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	bin := nobodyBinary(t)
	cmd := exec.Command(bin, "status", "--socket", socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "forbidden") {
		t.Fatalf("hardphone status as uid 65534 = %v\n%s\nwant refused", err, out)
	}
	hp := hardphoneBinary(t)
	var listed string
	waitFor(t, 10*time.Second, func() bool {
		b, _ := exec.Command(hp, "events", "--config", path, "--json").CombinedOutput()
		listed = string(b)
		return strings.Contains(listed, `"kind":"control.refused"`)
	})
	if !strings.Contains(listed, `"uid":"65534"`) {
		t.Errorf("journal through the agent:\n%s\nwant the refused uid", listed)
	}
	if b, err := exec.Command(hp, "events", "--config", path, "--verify").CombinedOutput(); err != nil {
		t.Fatalf("events --verify through the agent: %v\n%s", err, b)
	}
	if err := agentProc.stop(t); err != nil {
		t.Logf("agent stop: %v", err)
	}
	b, err := exec.Command(hp, "events", "--config", path, "--verify").CombinedOutput()
	if err != nil || !strings.Contains(string(b), "signed") {
		t.Fatalf("events --verify from the state file: %v\n%s", err, b)
	}
}

// nobodyBinary copies the hardphone binary where uid 65534 may run it.
func nobodyBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hardphone-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(hardphoneBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "hardphone")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
