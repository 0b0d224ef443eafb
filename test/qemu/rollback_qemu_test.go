package qemu

import (
	"strings"
	"testing"
	"time"
)

// attempts is BOOT_<slot>_LEFT for a new slot (board qemu-arm64).
const attempts = 3

// rollbackAfter drives a phone whose update medium holds a slot that never
// becomes healthy: A installs it, U-Boot tries B `attempts` times, each try
// ends with PID 1 declaring the boot unhealthy (want is the reason) and
// softdog resetting the board, then U-Boot falls back to A, which reports
// the rollback, registers with the same sealed secret and identity, and is
// marked good; the floor stays where it was.
func rollbackAfter(t *testing.T, name, config, want string) {
	p := newPhone(t)
	f := p.f
	med := f.medium(t, name, f.bundle(t, name, "2-"+name, "2", config, nil))
	start := time.Now()
	vm := p.boot(t, med)
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "A")
	wantField(t, vm.WaitMarker(t, "installed", installTimeout), "slot", "B")
	for try := 1; try <= attempts; try++ {
		vm.WaitLine(t, "HPBOOT boot slot=B", bootTimeout)
		wantField(t, vm.WaitMarker(t, "init", bootTimeout), "slot", "B")
		u := vm.WaitMarker(t, "unhealthy", 2*bootTimeout)
		if r := u.Fields["reason"]; !strings.Contains(r, want) {
			t.Fatalf("try %d: unhealthy reason %q, want it to contain %q", try, r, want)
		}
		vm.WaitLine(t, "softdog: Initiating system reboot", bootTimeout)
		t.Logf("try %d of B ended by the watchdog at %v", try, u.At.Round(time.Millisecond))
	}
	vm.WaitLine(t, "HPBOOT boot slot=A", bootTimeout)
	wantField(t, vm.WaitMarker(t, "init", bootTimeout), "slot", "A")
	ms := vm.WaitMarkers(t, bootTimeout, "rollback", "registered", "marked-good")
	wantField(t, ms["rollback"], "slot", "A")
	// The sealed password and the TPM identity still work in A.
	reg := ms["registered"]
	wantField(t, reg, "credentials", "tpm")
	wantField(t, ms["marked-good"], "slot", "A")
	st := vm.WaitMarker(t, "status", bootTimeout)
	wantField(t, st, "slot", "A")
	wantField(t, st, "floor", "1")
	wantField(t, st, "rollback", "true")
	if b := st.Fields["B"]; !strings.HasPrefix(b, "bad/0/") {
		t.Errorf("slot B after the rollback = %q, want bad/0/...", b)
	}
	// The medium is still attached; the image is known bad and already taken.
	vm.WaitMarker(t, "medium-skip", bootTimeout)
	vm.Kill(t)
	t.Logf("timeline:\n%s", vm.Timeline())
	wantEnv(t, p.disk, map[string]string{"BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0"})
	t.Logf("scenario bad update (%s): %v, A registered again %v after QEMU start", name,
		time.Since(start).Round(time.Millisecond), reg.At.Round(time.Millisecond))
}

// TestBadUpdateCrashLoop: B's agent exits at once on every start (its
// config names a CA file B does not have).
func TestBadUpdateCrashLoop(t *testing.T) {
	requireFull(t)
	rollbackAfter(t, "crash", configFor("10.0.2.100:5061", "/etc/hardphone/no-such-ca.pem"), "agent exited")
}

// TestBadUpdateNeverHealthy: B's agent runs but never registers: it
// reaches the registrar, and refuses the registrar's certificate (its
// config trusts the bundle keyring, not the SIP CA). That is the firmware's
// fault, not the network's, so B is never confirmed and the slot on trial
// misses its deadline. (A B that cannot reach the registrar at all is
// confirmed and stays: TestPendingUpdateRegistrarBlocked.)
func TestBadUpdateNeverHealthy(t *testing.T) {
	requireFull(t)
	rollbackAfter(t, "refused", configFor("10.0.2.100:5061", "/etc/hardphone/keyring.pem"), "not marked good or confirmed within")
}
