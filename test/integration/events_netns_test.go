package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/system"
	"github.com/hardphone/hardphone/test"
)

// TestSecurityEventsJournal: a caller of another uid refused on the control
// socket becomes a signed, hash-chained journal record that `hardphone
// events` lists through the running agent, and `--verify` proves the
// journal both through the agent and, once it stopped, from the state file.
func TestSecurityEventsJournal(t *testing.T) {
	e := newEnv(t)
	path := e.tpmPhone(t, "alice")
	dir := filepath.Dir(path)
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

// tpmPhone writes a config for user whose identity key and SIP password
// live in a credential store on a swtpm of its own, enrolled with the env's
// CA, and returns the config's path.
func (e *env) tpmPhone(t *testing.T, user string) string {
	t.Helper()
	return e.tpmPhoneConf(t, phoneConf{user: user})
}

// tpmPhoneConf is tpmPhone with more of the config set by pc.
func (e *env) tpmPhoneConf(t *testing.T, pc phoneConf) string {
	t.Helper()
	user := pc.user
	sw := test.StartSWTPM(t)
	pc.certCN, pc.credStore = "-", sw.Spec
	path := e.writeConfig(t, pc)
	creds, err := system.OpenCredentials(system.CredentialSpec{StateDir: filepath.Join(filepath.Dir(path), "state"), Protector: sw.Spec}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.pki.EnrolIdentity(creds, user)
	if err := creds.Put("sip/"+user, []byte(users[user])); err != nil {
		t.Fatal(err)
	}
	if err := creds.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHistoryAndContacts: a call placed through the control protocol lands
// in the call history, a vCard import lands in the contacts, both answer
// through `hardphone history` / `contacts`, and neither is in the state file
// in clear.
func TestHistoryAndContacts(t *testing.T) {
	e := newEnv(t)
	path := e.tpmPhone(t, "alice")
	bob := e.writeConfig(t, phoneConf{user: "bob"})
	startAgentProcess(t, "--config", bob)
	e.k.WaitRegistered(t, "bob", 10*time.Second)
	alice := startAgentProcess(t, "--config", path)
	e.k.WaitRegistered(t, "alice", 10*time.Second)
	hp := hardphoneBinary(t)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c := control.NewClient(cfg.ControlSocket)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := c.Dial(ctx, "", "sip:bob@"+e.k.IP())
	if err != nil {
		t.Fatalf("Dial through the agent: %v", err)
	}
	// Mute and unmute through the control protocol: the call says so.
	for _, step := range []struct {
		cmd  control.Command
		want bool
	}{{control.CmdCallMute, true}, {control.CmdCallUnmute, false}} {
		st, err := c.Call(ctx, step.cmd, "", cs.ID)
		if err != nil || st.Media.Muted != step.want {
			t.Fatalf("%s = %+v, %v; want muted %v", step.cmd, st, err, step.want)
		}
	}
	time.Sleep(time.Second) // a call of some length
	if _, err := c.Call(ctx, control.CmdCallHangup, "", cs.ID); err != nil {
		t.Fatalf("hangup: %v", err)
	}
	var out string
	waitFor(t, 10*time.Second, func() bool {
		b, _ := exec.Command(hp, "history", "--config", path, "--json").CombinedOutput()
		out = string(b)
		return strings.Contains(out, "sip:bob@")
	})
	if !strings.Contains(out, `"answered":true`) || !strings.Contains(out, `"direction":"out"`) {
		t.Errorf("history = %s, want the answered outgoing call to bob", out)
	}
	vcf := filepath.Join(t.TempDir(), "friends.vcf")
	if err := os.WriteFile(vcf, []byte("BEGIN:VCARD\r\nFN:Zelda Quux\r\nTEL:+49301234999\r\nEND:VCARD\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(hp, "contacts", "import", vcf, "--config", path).CombinedOutput(); err != nil || !strings.Contains(string(b), "imported 1") {
		t.Fatalf("contacts import: %v\n%s", err, b)
	}
	b, err := exec.Command(hp, "contacts", "--config", path, "--search", "zelda").CombinedOutput()
	if err != nil || !strings.Contains(string(b), "Zelda Quux") {
		t.Fatalf("contacts: %v\n%s", err, b)
	}
	if err := alice.stop(t); err != nil {
		t.Logf("stop: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(cfg.StateDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"Zelda", "+49301234999", "sip:bob@"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the state file holds %q in clear", secret)
		}
	}
}
