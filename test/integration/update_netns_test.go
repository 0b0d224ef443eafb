package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/store"
	"github.com/hardphone/hardphone/crypto/timefloor"
	"github.com/hardphone/hardphone/hal/ubootenv"
	"github.com/hardphone/hardphone/system"
	"github.com/hardphone/hardphone/test"
	"github.com/hardphone/hardphone/update"
)

// TestUpdateMarkGoodAdvancesTPMFloor is the agent's side of the A/B cycle
// with file slots: booted from A, the agent marks A good once registered;
// it installs a signed bundle into B when asked over its control socket;
// "rebooted" into B, it marks B good only after its account stays
// registered, and only then the anti-rollback floor in the TPM NV counter
// advances to the bundle's security version.
func TestUpdateMarkGoodAdvancesTPMFloor(t *testing.T) {
	e := newEnv(t)
	sw := test.StartSWTPM(t)
	dir := t.TempDir()
	for _, s := range []string{"A", "B"} {
		if err := os.WriteFile(filepath.Join(dir, "slot"+s), make([]byte, 4<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	envFile := filepath.Join(dir, "ubootenv")
	if err := os.WriteFile(envFile, make([]byte, 0x8000), 0o600); err != nil {
		t.Fatal(err)
	}
	envCfg := ubootenv.Config{Size: 0x4000, Copies: []ubootenv.Copy{{Path: envFile}, {Path: envFile, Offset: 0x4000}}}
	env, err := ubootenv.Open(envCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Init(map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}); err != nil {
		t.Fatal(err)
	}
	upki := test.NewUpdatePKI(t, filepath.Join(dir, "upki"))
	image := filepath.Join(dir, "rootfs.img")
	if err := os.WriteFile(image, bytes.Repeat([]byte("hardphone rootfs v2 "), 100000), 0o600); err != nil {
		t.Fatal(err)
	}
	bundlePath := filepath.Join(dir, "v2.raucb")
	hpctl := filepath.Join(t.TempDir(), "hpctl")
	if out, err := exec.Command("go", "build", "-o", hpctl, "../../cmd/hpctl").CombinedOutput(); err != nil {
		t.Fatalf("build hpctl: %v\n%s", err, out)
	}
	if out, err := exec.Command(hpctl, "bundle", "create", "--cert", upki.Leaf.CertFile, "--key", upki.Leaf.KeyFile,
		"--compatible", "hardphone-test", "--version", "2.0", "--security-version", "7", image, "-o", bundlePath).CombinedOutput(); err != nil {
		t.Fatalf("hpctl bundle create: %v\n%s", err, out)
	}

	layout := func(booted string) string {
		p := filepath.Join(dir, "layout-"+booted+".toml")
		body := fmt.Sprintf("compatible = \"hardphone-test\"\nbooted_slot = %q\n[slots]\nA = %q\nB = %q\n[env]\npath = %q\nsize = 0x4000\nredundant_offset = 0x4000\n",
			booted, filepath.Join(dir, "slotA"), filepath.Join(dir, "slotB"), envFile)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pc := phoneConf{user: "alice", certCN: "-", credStore: sw.Spec}
	path := e.writeConfig(t, pc)
	stateDir := filepath.Join(filepath.Dir(path), "state")
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
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	withUpdate := func(booted string) string {
		body := string(base) + fmt.Sprintf("\n[update]\nlayout = %q\nkeyring = %q\nmark_good_after = \"1s\"\n",
			layout(booted), upki.CA.CertFile)
		p := filepath.Join(filepath.Dir(path), "hardphone-"+booted+".toml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	slotState := func(st *update.Status, name string) string {
		for _, s := range st.Slots {
			if s.Name == name {
				return s.State
			}
		}
		return ""
	}
	updStatus := func(p *phone) *update.Status {
		t.Helper()
		st, err := control.NewClient(p.cfg.ControlSocket).UpdateStatus(context.Background())
		if err != nil {
			t.Fatalf("update status over the control socket: %v", err)
		}
		return st
	}
	// waitGood waits until slot is good and the floor is at least floor:
	// MarkGood writes the record first and the floor after it (the order
	// that survives a power cut), so the two are seen one after the other.
	waitGood := func(p *phone, slot string, floor uint64) *update.Status {
		t.Helper()
		var st *update.Status
		waitFor(t, 15*time.Second, func() bool {
			st = updStatus(p)
			return slotState(st, slot) == "good" && st.Floor.Value >= floor
		})
		return st
	}

	// Boot 1: slot A. Registered for 1 s, A is marked good.
	pA := startPhoneFrom(t, withUpdate("A"), nil)
	pA.waitRegistered(t)
	st := waitGood(pA, "A", 0)
	if st.Floor.Kind != "tpm-nv" {
		t.Errorf("floor kind = %q, want tpm-nv", st.Floor.Kind)
	}
	floor0 := st.Floor.Value
	installRaw(t, pA.cfg.ControlSocket, bundlePath)
	st = updStatus(pA)
	if len(st.BootOrder) == 0 || st.BootOrder[0] != "B" {
		t.Fatalf("boot order after install = %v, want B first", st.BootOrder)
	}
	if st.Floor.Value != floor0 {
		t.Errorf("floor moved at install to %d, want %d until B is marked good", st.Floor.Value, floor0)
	}
	pA.cancel()
	<-pA.done
	if err := pA.ph.Close(); err != nil {
		t.Fatal(err)
	}

	// Boot 2: the bootloader took B. Only after B's account stays
	// registered is B good and the floor at the bundle's security version.
	pB := startPhoneFrom(t, withUpdate("B"), nil)
	pB.waitRegistered(t)
	st = waitGood(pB, "B", 7)
	if st.Floor.Value != 7 {
		t.Errorf("floor after B marked good = %d, want 7", st.Floor.Value)
	}
	got, err := os.ReadFile(filepath.Join(dir, "slotB"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(image)
	if !bytes.Equal(got[:len(want)], want) {
		t.Errorf("slot B does not hold the bundle's image")
	}
}

// installRaw asks the running agent to install a bundle and checks the
// answer is an install result naming the target slot.
func installRaw(t *testing.T, socket, bundle string) {
	t.Helper()
	res, err := control.NewClient(socket).UpdateInstall(context.Background(), bundle, false)
	if err != nil || res.Slot != "B" {
		t.Fatalf("update install = %+v, %v; want slot B", res, err)
	}
}

// TestUpdateFloorEveryWay: on a TPM phone the anti-rollback floor is the
// TPM's NV counter whichever way `hardphone update install` runs: through
// the running agent, with --config and no agent, and with flags only. The
// TPM floor is 5 and the state file's would be 0: a bundle with security
// version 0 (one of rauc's own) is refused all three ways, with nothing
// written.
func TestUpdateFloorEveryWay(t *testing.T) {
	e := newEnv(t)
	sw := test.StartSWTPM(t)
	dir := t.TempDir()
	for _, s := range []string{"A", "B"} {
		if err := os.WriteFile(filepath.Join(dir, "slot"+s), make([]byte, 4<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	envFile := filepath.Join(dir, "ubootenv")
	if err := os.WriteFile(envFile, make([]byte, 0x8000), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := ubootenv.Open(ubootenv.Config{Size: 0x4000, Copies: []ubootenv.Copy{{Path: envFile}, {Path: envFile, Offset: 0x4000}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Init(map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0"}); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "layout.toml")
	if err := os.WriteFile(layout, []byte(fmt.Sprintf("compatible = \"hardphone-test\"\nbooted_slot = \"A\"\n[slots]\nA = %q\nB = %q\n[env]\npath = %q\nredundant_offset = 0x4000\n",
		filepath.Join(dir, "slotA"), filepath.Join(dir, "slotB"), envFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	upki := test.NewUpdatePKI(t, filepath.Join(dir, "upki"))
	image := filepath.Join(dir, "rootfs.img")
	content := make([]byte, 1<<20)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(image, content, 0o600); err != nil {
		t.Fatal(err)
	}
	// rauc 1.8 drops [meta.*]: its bundles carry security version 0.
	old := test.RaucBundle(t, test.RaucBundleSpec{Compatible: "hardphone-test", Version: "3.0", Format: "verity",
		Images: map[string]string{"rootfs": image}, Cert: upki.Leaf.CertFile, Key: upki.Leaf.KeyFile}, filepath.Join(dir, "v3.raucb"))

	pc := phoneConf{user: "alice", certCN: "-", credStore: sw.Spec}
	base := e.writeConfig(t, pc)
	stateDir := filepath.Join(filepath.Dir(base), "state")
	creds, err := system.OpenCredentials(system.CredentialSpec{StateDir: stateDir, Protector: sw.Spec}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.pki.EnrolIdentity(creds, "alice")
	if err := creds.Put("sip/alice", []byte(users["alice"])); err != nil {
		t.Fatal(err)
	}
	c, err := creds.Protector().Counter(system.FloorCounterIndex)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AdvanceTo(5); err != nil {
		t.Fatal(err)
	}
	if err := creds.Close(); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(filepath.Dir(base), "hardphone-update.toml")
	if err := os.WriteFile(cfgPath, append(body, fmt.Sprintf("\n[update]\nlayout = %q\nkeyring = %q\n", layout, upki.CA.CertFile)...), 0o600); err != nil {
		t.Fatal(err)
	}
	slotB, _ := os.ReadFile(filepath.Join(dir, "slotB"))
	bin := hardphoneBinary(t)
	install := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"update", "install", old}, args...)...).CombinedOutput()
		if err == nil {
			t.Fatalf("hardphone update install %v succeeded:\n%s", args, out)
		}
		return string(out)
	}
	wantRefused := func(way, out string) {
		t.Helper()
		if !strings.Contains(out, "security version 0, floor (tpm-nv) is 5") {
			t.Errorf("%s: %s\nwant a refusal by the TPM floor", way, out)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "slotB")); !bytes.Equal(got, slotB) {
			t.Errorf("%s: slot B changed by a refused install", way)
		}
	}

	// 1. Through the running agent.
	p := startPhoneFrom(t, cfgPath, nil)
	waitFor(t, 10*time.Second, func() bool {
		_, err := control.NewClient(p.cfg.ControlSocket).Status(context.Background())
		return err == nil
	})
	wantRefused("through the agent", install("--config", cfgPath))
	p.cancel()
	<-p.done
	if err := p.ph.Close(); err != nil {
		t.Fatal(err)
	}
	// The agent raised the time floor to the registrar certificate's
	// NotBefore, which its handshake verified.
	st, err := store.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	floor, src, err := timefloor.Read(st.DB())
	if cerr := st.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil || src != "registrar certificate" || floor.Before(time.Now().Add(-2*time.Hour)) {
		t.Errorf("time floor after registering = %v from %q (%v), want the registrar certificate's NotBefore", floor, src, err)
	}
	// 2. With --config and no agent: the config's credential store's TPM.
	wantRefused("--config, no agent", install("--config", cfgPath))
	// 3. With flags only: the layout, the state dir and the TPM.
	wantRefused("flags only", install("--layout", layout, "--state-dir", stateDir, "--tpm", sw.Spec, "--keyring", upki.CA.CertFile))
	// And without naming the TPM, the flags-only path says which floor it
	// used: the weaker state file (no TPM was named or on the board).
	out := string(must(exec.Command(bin, "update", "status", "--layout", layout, "--state-dir", stateDir,
		"--keyring", upki.CA.CertFile).CombinedOutput()))
	if !strings.Contains(out, "kept in state-file (weaker: no TPM)") {
		t.Errorf("flags-only status without a TPM:\n%s\nwant the state-file floor reported as weaker", out)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(fmt.Sprintf("%v: %s", err, b))
	}
	return b
}
