package integration

import (
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/hal/ubootenv"
	"github.com/hardphone/hardphone/test"
	"github.com/hardphone/hardphone/update/bootchooser"
)

// readmeCommands returns every hardphone and hpctl command line in the
// README's sh code blocks, continuation lines joined and comments cut.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		body := strings.ReplaceAll(m[1], "\\\n", " ")
		for _, line := range strings.Split(body, "\n") {
			if i := strings.Index(line, " #"); i >= 0 {
				line = line[:i]
			}
			line = strings.Join(strings.Fields(line), " ")
			// The fleet section's commands need an hpfleet and a phone
			// TPM with EK certificates: cmd/hpctl's TestREADMEFleet runs
			// them, in that world.
			if strings.HasPrefix(line, "hpctl fleet ") || strings.HasPrefix(line, "hpctl enrol ") {
				continue
			}
			if strings.HasPrefix(line, "hardphone ") || strings.HasPrefix(line, "hpctl ") || strings.HasPrefix(line, "bin/linux-amd64/hardphone ") {
				cmds = append(cmds, line)
			}
		}
	}
	return cmds
}

// TestREADMECommands runs every hardphone and hpctl command the README's
// code blocks show, as written, in a world made for them: a working
// directory with the files they name, Kamailio with a bob to call, a swtpm
// for /dev/tpmrm0 and a scratch state directory for /data/hardphone, and
// hardphone.toml an agent config with an updater on file slots. `hardphone
// run` stays up (alice's daemon) while the others run against it. A command
// the README gains and this world cannot run fails the test: the README
// cannot drift from the code again.
func TestREADMECommands(t *testing.T) {
	e := newEnv(t)
	sw := test.StartSWTPM(t)
	work := t.TempDir()
	state := filepath.Join(t.TempDir(), "data-hardphone")
	in := func(name string) string { return filepath.Join(work, name) }

	// The files the commands name.
	test.WriteToneWAV(t, in("greeting.wav"), 440, 3*time.Second, 8000)
	test.WriteToneWAV(t, in("tone.wav"), 880, 3*time.Second, 8000)
	if err := os.Mkdir(in("calls"), 0o755); err != nil {
		t.Fatal(err)
	}
	upki := test.NewUpdatePKI(t, filepath.Join(t.TempDir(), "upki"))
	for src, dst := range map[string]string{upki.Leaf.CertFile: "signer.pem", upki.Leaf.KeyFile: "signer.key", upki.CA.CertFile: "ca.pem"} {
		copyTo(t, src, in(dst))
	}
	rootfs := make([]byte, 1<<20)
	if _, err := rand.Read(rootfs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in("rootfs.ext4"), rootfs, 0o600); err != nil {
		t.Fatal(err)
	}
	// hardphone.toml: alice, with a control socket and an updater whose
	// slots are files (a rig named by layout, compatible with the README's
	// bundle).
	for _, s := range []string{"A", "B"} {
		if err := os.WriteFile(in("slot"+s), make([]byte, 4<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(in("ubootenv"), make([]byte, 0x8000), 0o600); err != nil {
		t.Fatal(err)
	}
	envInit(t, in("ubootenv"))
	if err := os.WriteFile(in("layout.toml"), []byte(fmt.Sprintf("compatible = \"hardphone-qemu-arm64\"\nbooted_slot = \"A\"\n[slots]\nA = %q\nB = %q\n[env]\npath = %q\nredundant_offset = 0x4000\n",
		in("slotA"), in("slotB"), in("ubootenv"))), 0o600); err != nil {
		t.Fatal(err)
	}
	alicePath := e.writeConfig(t, phoneConf{user: "alice", digestMin: "MD5"})
	alice, err := os.ReadFile(alicePath)
	if err != nil {
		t.Fatal(err)
	}
	aliceDir := filepath.Dir(alicePath)
	cfg := strings.ReplaceAll(string(alice), `"password"`, fmt.Sprintf("%q", filepath.Join(aliceDir, "password")))
	cfg = strings.Replace(cfg, `control_socket = "ctl.sock"`, fmt.Sprintf("control_socket = %q", in("run/ctl.sock")), 1)
	cfg += fmt.Sprintf("\n[update]\nlayout = %q\nkeyring = %q\nmark_good_after = \"1s\"\n", in("layout.toml"), in("ca.pem"))
	if err := os.WriteFile(in("hardphone.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// /etc/hardphone/hardphone.toml: a phone's config whose credential
	// store is the swtpm and whose state is /data/hardphone (the credential
	// commands run with the agent stopped, so not hardphone.toml's state).
	phone := fmt.Sprintf("state_dir = %q\ncredential_store = %q\n[tls]\nca_file = %q\n[[account]]\nuser = \"alice\"\nregistrar = %q\npassword_cred = \"sip/alice\"\n",
		state, sw.Spec, e.pki.CAFile, e.k.Addr())
	if err := os.WriteFile(in("phone.toml"), []byte(phone), 0o600); err != nil {
		t.Fatal(err)
	}
	// bob answers alice's call.
	bobCfg := e.writeConfig(t, phoneConf{user: "bob", digestMin: "MD5"})
	startAgentProcess(t, "--config", bobCfg)
	e.k.WaitRegistered(t, "bob", 10*time.Second)

	bin := hardphoneBinary(t)
	hpctl := filepath.Join(t.TempDir(), "hpctl")
	if out, err := exec.Command("go", "build", "-o", hpctl, "../../cmd/hpctl").CombinedOutput(); err != nil {
		t.Fatalf("build hpctl: %v\n%s", err, out)
	}
	subst := strings.NewReplacer("/data/hardphone", state, "/dev/tpmrm0", sw.Spec, "/etc/hardphone/hardphone.toml", in("phone.toml"),
		"sip:bob@example.com", "sip:bob@"+e.k.IP())
	cmds := readmeCommands(t)
	if len(cmds) < 10 {
		t.Fatalf("found %d commands in README, want the documented ones", len(cmds))
	}
	for _, line := range cmds {
		args, err := splitArgs(subst.Replace(line))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		prog := bin
		if args[0] == "hpctl" {
			prog = hpctl
		}
		args = args[1:]
		if len(args) > 0 && args[0] == "run" {
			// The daemon: it stays up for the commands after it.
			cmd := exec.Command(prog, args...)
			cmd.Dir = work
			logf, err := os.Create(filepath.Join(t.TempDir(), "run.log"))
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stdout, cmd.Stderr = logf, logf
			if err := cmd.Start(); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); logf.Close(); close(done) }() // the exit status is the stop's business
			t.Cleanup(func() {
				_ = cmd.Process.Signal(os.Interrupt) // already gone is fine
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Errorf("hardphone run ignored SIGINT")
					_ = cmd.Process.Kill()
				}
			})
			e.k.WaitRegistered(t, "alice", 15*time.Second)
			t.Logf("ok (running): %s", line)
			continue
		}
		cmd := exec.Command(prog, args...)
		cmd.Dir = work
		if len(args) > 1 && args[0] == "creds" && args[1] == "set" {
			cmd.Stdin = strings.NewReader("a-sip-password\n")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("README command failed: %s\n%v\n%s", line, err, out)
			continue
		}
		t.Logf("ok: %s", line)
		if len(args) > 1 && args[0] == "identity" && args[1] == "csr" {
			// The CA's part between csr and import-cert: sign alice.csr.
			b, err := os.ReadFile(in("alice.csr"))
			if err != nil {
				t.Fatal(err)
			}
			blk, _ := pem.Decode(b)
			if blk == nil {
				t.Fatalf("alice.csr is not PEM: %q", b)
			}
			copyTo(t, e.pki.ClientForCSR(blk.Bytes), in("alice.pem"))
		}
	}
}

// splitArgs splits a command line on spaces, keeping double-quoted words
// whole (the README's `--subject "CN=alice"`).
func splitArgs(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	quoted, in := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unbalanced quote in %q", s)
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

func copyTo(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// envInit writes a fresh redundant boot environment with A primary.
func envInit(t *testing.T, path string) {
	t.Helper()
	env, err := ubootenv.Open(ubootenv.Config{Size: 0x4000, Copies: []ubootenv.Copy{{Path: path}, {Path: path, Offset: 0x4000}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Init(bootchooser.Initial([]string{"A", "B"}, 3)); err != nil {
		t.Fatal(err)
	}
}
