package pid1

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/hal/ubootenv"
	"github.com/hardphone/hardphone/system"
	"github.com/hardphone/hardphone/test"
	"github.com/hardphone/hardphone/update/bootchooser"
)

// TestSuperviseRealAgent runs the supervisor's side of the control protocol
// against a real agent (built by system from a rig's layout, with a real
// updater on file slots), without QEMU: the boot environment as the
// bootloader left it, the status polls, the boot confirmed while the
// registrar refuses connections (the network, not the firmware) and taken
// back when PID 1 then judges the boot unhealthy, and an install from a
// "medium" bundle taken exactly once.
func TestSuperviseRealAgent(t *testing.T) {
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
	if err := env.Init(bootchooser.Initial([]string{"A", "B"}, 3)); err != nil {
		t.Fatal(err)
	}
	// The bootloader counted this boot.
	if err := env.Set(map[string]string{bootchooser.LeftVar("A"): "2"}); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "layout.toml")
	if err := os.WriteFile(layout, []byte(fmt.Sprintf("compatible = \"hardphone-test\"\nbooted_slot = \"A\"\n[slots]\nA = %q\nB = %q\n[env]\npath = %q\nredundant_offset = 0x4000\n",
		filepath.Join(dir, "slotA"), filepath.Join(dir, "slotB"), envFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	upki := test.NewUpdatePKI(t, filepath.Join(dir, "upki"))
	pki := test.NewPKI(t, filepath.Join(dir, "pki"))
	image := filepath.Join(dir, "rootfs.img")
	content := make([]byte, 1<<20)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(image, content, 0o600); err != nil {
		t.Fatal(err)
	}
	bundle := test.RaucBundle(t, test.RaucBundleSpec{Compatible: "hardphone-test", Version: "2.0", Format: "verity",
		Images: map[string]string{"rootfs": image}, Cert: upki.Leaf.CertFile, Key: upki.Leaf.KeyFile}, filepath.Join(dir, "v2.raucb"))
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "run", "control.sock")
	cfgText := fmt.Sprintf(`state_dir = "state"
control_socket = %q
[tls]
ca_file = %q
[update]
layout = %q
keyring = %q
mark_good_after = "200ms"
[[account]]
user = "alice"
registrar = "127.0.0.1:9"
password_file = "password"
`, socket, pki.CAFile, layout, upki.CA.CertFile)
	cfgPath := filepath.Join(dir, "hardphone.toml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ph, err := system.Open(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ag, err := ph.Agent(system.Daemon, "test")
	if err != nil {
		ph.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ag.Run(ctx); err != nil {
			t.Errorf("agent Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := ph.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})

	b := *ph.Board()
	b.ControlSocket, b.StateDir = socket, cfg.StateDir
	b.Health = board.Health{Poll: 100 * time.Millisecond, Liveness: time.Minute, TrialDeadline: time.Minute, MaxAgentExits: 3}
	var out bytes.Buffer
	s := newSupervisor(&b, markers{start: time.Now(), w: &out}, log)
	s.readEnv()
	if !strings.Contains(out.String(), "HARDPHONE-MARKER bootenv order=A,B left=2") || s.initialLeft != 2 {
		t.Fatalf("readEnv printed %q (left %d), want order A,B and 2 left", out.String(), s.initialLeft)
	}
	// The agent runs in this process; the supervisor asks it like any.
	s.agentPID, s.agentStarted = os.Getpid(), time.Now()
	deadline := time.Now().Add(15 * time.Second)
	// Until both answered: on a loaded machine one request can miss its
	// deadline while the other gets through.
	for (!strings.Contains(out.String(), "floor=0") || s.lastAnswer.IsZero()) && time.Now().Before(deadline) {
		s.poll(time.Now())
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "HARDPHONE-MARKER floor=0 kind=state-file") || s.lastAnswer.IsZero() {
		t.Fatalf("polls printed %q; want the floor marker from the agent's update status", out.String())
	}
	if s.registered {
		t.Errorf("registered with no registrar")
	}
	// Nothing listens on the registrar's port: the agent runs, the network
	// is the problem, so it confirms the boot without marking it good.
	for !s.confirmed && time.Now().Before(deadline) {
		s.poll(time.Now())
		time.Sleep(50 * time.Millisecond)
	}
	if !s.confirmed || s.markedGood || !strings.Contains(out.String(), "HARDPHONE-MARKER confirmed slot=A state=unknown left=3 accounts=registrar-unreachable") {
		t.Fatalf("polls printed %q; want the boot confirmed with the registrar unreachable, not marked good", out.String())
	}
	if st, err := system.ReadBootState(&b); err != nil || st.Left["A"] != 3 {
		t.Fatalf("boot state after confirm = %+v, %v; want A's counter restored to 3", st, err)
	}
	// PID 1 judges the boot unhealthy after all: the attempt counts again.
	s.fail("test: judged unhealthy after the confirmation")
	if !strings.Contains(out.String(), "HARDPHONE-MARKER attempt-taken-back slot=A left=2") {
		t.Fatalf("fail printed %q; want the attempt taken back", out.String())
	}
	if st, err := system.ReadBootState(&b); err != nil || st.Left["A"] != 2 {
		t.Fatalf("boot state after fail = %+v, %v; want A's counter back at 2", st, err)
	}

	o := s.installBundle(bundle)
	if o.err != nil || o.result == nil || o.result.Slot != "B" || o.result.Version != "2.0" {
		t.Fatalf("installBundle = %+v, want version 2.0 into slot B", o)
	}
	if again := s.installBundle(bundle); !strings.Contains(again.skip, "already taken") {
		t.Fatalf("second installBundle = %+v, want it skipped", again)
	}
	st, err := system.ReadBootState(&b)
	if err != nil || st.First() != "B" || st.Left["B"] != 3 {
		t.Errorf("boot state after install = %+v, %v; want B first with 3 tries", st, err)
	}
}
