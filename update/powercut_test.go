package update

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardphone/hardphone/update/bootchooser"

	"go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/hal/ubootenv"
	"github.com/hardphone/hardphone/update/bundle"
)

var powercutPoints = flag.Int("powercut.points", 0, "kill points for TestPowerCut (default 50, or 500 with HARDPHONE_SOAK=1)")

const childEnv = "HARDPHONE_POWERCUT_CHILD"

// TestPowerCutChild is the process TestPowerCut kills: it installs the
// bundle named in the rig file and exits. Run directly it does nothing.
func TestPowerCutChild(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("only run as TestPowerCut's child")
	}
	var job struct {
		Rig    rigFiles `json:"rig"`
		Bundle string   `json:"bundle"`
	}
	if err := json.Unmarshal(readFile(t, spec), &job); err != nil {
		t.Fatalf("child spec: %v", err)
	}
	db, err := bbolt.Open(job.Rig.DB, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("child db: %v", err)
	}
	defer db.Close()
	env, err := ubootenv.Open(ubootenv.Config{Size: envSize, Copies: []ubootenv.Copy{{Path: job.Rig.Env}, {Path: job.Rig.Env, Offset: envSize}}})
	if err != nil {
		t.Fatalf("child env: %v", err)
	}
	kr, err := bundle.LoadKeyring(job.Rig.Keyring)
	if err != nil {
		t.Fatalf("child keyring: %v", err)
	}
	u, err := New(job.Rig.config(), db, env, kr)
	if err != nil {
		t.Fatalf("child updater: %v", err)
	}
	// Each progress event (one per MiB checked or written) sleeps a
	// little, so the install spans enough time for the kill points to land
	// in every phase, not only in process start-up.
	slow := func(Progress) { time.Sleep(time.Millisecond) }
	if _, err := u.Install(context.Background(), job.Bundle, InstallOptions{Progress: slow}); err != nil {
		t.Fatalf("child install: %v", err)
	}
}

// TestPowerCut kills an installing process with SIGKILL at random points
// and checks what a reboot would find: either the environment still selects
// the old slot and the old slot is intact, or it selects the new slot, the
// new slot holds the whole image, and boot counting is armed. Then it boots
// (simulated bootloader) and checks the updater recovers.
func TestPowerCut(t *testing.T) {
	points := 50
	if testing.Short() {
		points = 5
	}
	if os.Getenv("HARDPHONE_SOAK") == "1" {
		points = 500
	}
	if *powercutPoints > 0 {
		points = *powercutPoints
	}
	pki := sharedPKI(t)
	r := newRig(t, 24<<20)
	image := randomBytes(t, 16<<20)
	path := r.ownBundle(bundleSpec{version: "2", secver: 1, signer: pki.Leaf, image: image})
	origA, origB := readFile(t, r.SlotA), readFile(t, r.SlotB)
	spec := filepath.Join(r.Dir, "child.json")
	b, err := json.Marshal(map[string]any{"rig": r.rigFiles, "bundle": path})
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	writeFile(t, spec, b)

	reset := func() {
		r.closeDB()
		os.Remove(r.DB)
		writeFile(t, r.SlotA, origA)
		writeFile(t, r.SlotB, origB)
		if err := r.store().Init(map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3", "bootcmd": "run bootchooser"}); err != nil {
			t.Fatalf("init env: %v", err)
		}
		writeFile(t, r.Cmdline, []byte("rauc.slot=A\n"))
		writeFile(t, r.BootID, []byte(newBootID(t)))
	}
	run := func(kill time.Duration) (killed bool) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPowerCutChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+spec)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start child: %v", err)
		}
		var timer *time.Timer
		if kill > 0 {
			timer = time.AfterFunc(kill, func() {
				// SIGKILL: no deferred code, no flush, like pulling the plug
				// on the process.
				_ = cmd.Process.Kill() // the child may have exited already
			})
		}
		err := cmd.Wait()
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			if st, ok := cmd.ProcessState.Sys().(interface{ Signaled() bool }); ok && st.Signaled() {
				return true
			}
			t.Fatalf("child failed: %v\n%s", err, out.String())
		}
		return false
	}

	// One full run measures how long an install takes.
	reset()
	start := time.Now()
	run(0)
	full := time.Since(start)
	if !r.slotHas(r.SlotB, image) || r.vars()["BOOT_ORDER"] != "B A" {
		t.Fatalf("uninterrupted child install did not complete")
	}
	t.Logf("uninterrupted install in a child process: %v", full)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	var old, switched, killedCount int
	phases := map[string]int{} // install record outcome found after the kill
	for i := 0; i < points; i++ {
		reset()
		delay := time.Duration(rng.Int64N(int64(full)*6/5)) + time.Millisecond
		if run(delay) {
			killedCount++
		}
		v := r.vars()
		env := bootchooser.Parse(v, []string{"A", "B"})
		switch env.Next() {
		case "A":
			old++
			if !bytes.Equal(readFile(t, r.SlotA), origA) {
				t.Fatalf("point %d (%v): env selects A but slot A changed", i, delay)
			}
		case "B":
			switched++
			if !r.slotHas(r.SlotB, image) {
				t.Fatalf("point %d (%v): env selects B but slot B does not hold the whole image", i, delay)
			}
			if env.First() != "B" || env.Left["B"] != 3 {
				t.Fatalf("point %d (%v): env selects B without boot counting armed: %v", i, delay, v)
			}
		default:
			t.Fatalf("point %d (%v): env selects no slot: %v", i, delay, v)
		}
		u := r.updater()
		recs, err := u.load()
		if err != nil {
			t.Fatalf("point %d: records after the cut: %v", i, err)
		}
		if recs.last == nil {
			phases["not started"]++
		} else {
			phases[recs.last.Outcome]++
		}
		// Reboot and let the updater make sense of it.
		booted := r.boot()
		u = r.updater()
		if _, err := u.CheckBoot(); err != nil {
			t.Fatalf("point %d: CheckBoot() after the cut: %v", i, err)
		}
		st, err := u.Status()
		if err != nil {
			t.Fatalf("point %d: Status() after the cut: %v", i, err)
		}
		if st.BootedSlot != booted || st.Rollback {
			t.Fatalf("point %d: status after the cut = %s", i, mustJSON(t, st))
		}
		if booted == "B" {
			if err := u.MarkGood(); err != nil {
				t.Fatalf("point %d: MarkGood() error %v", i, err)
			}
		} else if b := slotStatus(t, st, "B"); b.State == StatePending || b.State == StateGood {
			t.Fatalf("point %d: slot B is %s though A booted after the cut", i, b.State)
		}
	}
	t.Logf("%d kill points: %d killed before exit; %d left the old slot selected, %d the new slot armed; records found: %v",
		points, killedCount, old, switched, phases)
	if points >= 20 && (old == 0 || switched == 0) {
		t.Errorf("kill points covered only one side of the switch: old %d, new %d", old, switched)
	}
}
