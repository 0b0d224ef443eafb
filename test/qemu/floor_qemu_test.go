package qemu

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardphone/hardphone/hal/ubootenv"
	"github.com/hardphone/hardphone/test"
)

// bootBlocked powers the phone on with the registrar blocked: QEMU's
// forward for 10.0.2.100:5061 leads to a loopback port nothing listens on,
// so the forward accepts the guest's connection and closes it at once, as
// a network without the registrar behind it does.
func (p *phone) bootBlocked(t *testing.T) *test.QEMU {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("blocked port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatalf("blocked port: %v", err)
	}
	return test.StartQEMU(t, test.QEMUConfig{Disk: p.disk, Flash: filepath.Join(p.f.base, "flash1.img"),
		TPMState: p.tpm, SIPPort: port, Dir: p.dir})
}

// setEnv writes bootchooser variables into a powered-off disk, as someone
// with access to the boot environment (or an agent without the boot-time
// floor) would.
func setEnv(t *testing.T, disk string, vars map[string]string) {
	t.Helper()
	st, err := ubootenv.Open(envConfig(t, disk))
	if err != nil {
		t.Fatalf("open boot env: %v", err)
	}
	if err := st.Set(vars); err != nil {
		t.Fatalf("write boot env: %v", err)
	}
}

// noMarker fails if the console printed marker event with key=value.
func noMarker(t *testing.T, vm *test.QEMU, event, key, value string) {
	t.Helper()
	for _, m := range vm.Markers(event) {
		if m.Fields[key] == value {
			t.Fatalf("console printed %s", m.Line)
		}
	}
}

// blockedBoot boots with the registrar blocked and checks the boot health
// rule: slot runs (U-Boot chose it, its agent came up), is confirmed with
// the registrar unreachable (its counter restored) and is not marked good;
// then the power goes. It returns the status marker.
func blockedBoot(t *testing.T, p *phone, slot, state string) test.Marker {
	t.Helper()
	vm := p.bootBlocked(t)
	vm.WaitLine(t, "HPBOOT boot slot="+slot, bootTimeout)
	wantField(t, vm.WaitMarker(t, "init", bootTimeout), "slot", slot)
	failed, _ := vm.WaitLine(t, `msg="registration failed"`, bootTimeout)
	c := vm.WaitMarker(t, "confirmed", bootTimeout)
	wantField(t, c, "slot", slot)
	wantField(t, c, "state", state)
	wantField(t, c, "left", "3")
	wantField(t, c, "accounts", "registrar-unreachable")
	st := vm.WaitMarker(t, "status", bootTimeout)
	if n := len(vm.Markers("registered")) + len(vm.Markers("marked-good")) + len(vm.Markers("unhealthy")); n != 0 {
		t.Fatalf("registered, marked good or unhealthy with the registrar blocked; timeline:\n%s", vm.Timeline())
	}
	vm.Kill(t)
	t.Logf("blocked boot of %s: confirmed %v after power-on; the agent saw: %s", slot, c.At.Round(time.Millisecond), failed)
	wantEnv(t, p.disk, map[string]string{"BOOT_" + slot + "_LEFT": "3"})
	return st
}

// TestRegistrarBlockedAfterUpdate is issue 10's attack on the boot path: B
// (security version 2) is installed, marked good and the floor advanced to
// 2; then the registrar is blocked across three power cycles. B runs
// healthy but cannot register: each boot confirms it (its counter back to
// 3), so U-Boot never falls back and the floor stays. Then the fallback is
// forced (B's counter 0, A back in the order with attempts): A (security
// version 1, below the floor) boots, reports the rollback attack, is never
// marked good, and restores B, which the phone reboots into at once.
func TestRegistrarBlockedAfterUpdate(t *testing.T) {
	requireFull(t)
	p := newPhone(t)
	f := p.f
	med := f.medium(t, "good", f.bundle(t, "good", "2", "2", "", nil))
	start := time.Now()
	vm := p.boot(t, med)
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "A")
	wantField(t, vm.WaitMarker(t, "installed", installTimeout), "slot", "B")
	vm.WaitLine(t, "HPBOOT boot slot=B", bootTimeout)
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "B")
	vm.WaitMarker(t, "floor=2", bootTimeout)
	st := vm.WaitMarker(t, "status", bootTimeout)
	wantField(t, st, "order", "B")
	wantField(t, st, "A", "good/0/")
	vm.Kill(t)
	wantEnv(t, p.disk, map[string]string{"BOOT_ORDER": "B", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "3"})
	t.Logf("good update to B, floor 2: %v", time.Since(start).Round(time.Millisecond))

	blockedStart := time.Now()
	for i := 1; i <= attempts; i++ {
		st := blockedBoot(t, p, "B", "good")
		wantField(t, st, "floor", "2")
		wantField(t, st, "B", "good/3/2")
	}
	t.Logf("%d boots with the registrar blocked, never a fallback: %v", attempts, time.Since(blockedStart).Round(time.Millisecond))

	// B fails hard and the environment names A again with its attempts.
	setEnv(t, p.disk, map[string]string{"BOOT_ORDER": "B A", "BOOT_B_LEFT": "0", "BOOT_A_LEFT": "3"})
	attackStart := time.Now()
	vm = p.boot(t, "")
	vm.WaitLine(t, "HPBOOT boot slot=A", bootTimeout)
	wantField(t, vm.WaitMarker(t, "init", bootTimeout), "slot", "A")
	atk := vm.WaitMarker(t, "rollback-attack", bootTimeout)
	wantField(t, atk, "slot", "A")
	wantField(t, atk, "security_version", "1")
	wantField(t, atk, "floor", "2")
	wantField(t, atk, "next", "B")
	wantField(t, vm.WaitMarker(t, "reboot", bootTimeout), "reason", "below-floor")
	vm.WaitLine(t, "HPBOOT boot slot=B", bootTimeout)
	wantField(t, vm.WaitMarker(t, "init", bootTimeout), "slot", "B")
	wantField(t, vm.WaitMarker(t, "registered", bootTimeout), "slot", "B")
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "B")
	st = vm.WaitMarker(t, "status", bootTimeout)
	wantField(t, st, "order", "B")
	wantField(t, st, "B", "good/3/2")
	wantField(t, st, "floor", "2")
	vm.Kill(t)
	noMarker(t, vm, "marked-good", "slot", "A")
	noMarker(t, vm, "confirmed", "slot", "A")
	t.Logf("timeline of the forced fallback:\n%s", vm.Timeline())
	wantEnv(t, p.disk, map[string]string{"BOOT_ORDER": "B", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "3"})
	t.Logf("scenario registrar blocked after update: %v (forced fallback to A and back to B: %v; attack reported %v after power-on)",
		time.Since(start).Round(time.Millisecond), time.Since(attackStart).Round(time.Millisecond), atk.At.Round(time.Millisecond))
}

// TestPendingUpdateRegistrarBlocked: B is installed, and the registrar
// goes away before B could prove itself. B runs but cannot register: it is
// confirmed every boot and stays pending across three power cycles (not
// marked good, the floor stays at 1, no rollback); when the registrar is
// back, B registers, is marked good and the floor advances.
func TestPendingUpdateRegistrarBlocked(t *testing.T) {
	requireFull(t)
	p := newPhone(t)
	f := p.f
	med := f.medium(t, "good", f.bundle(t, "good", "2", "2", "", nil))
	start := time.Now()
	vm := p.boot(t, med)
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "A")
	wantField(t, vm.WaitMarker(t, "installed", installTimeout), "slot", "B")
	// The power goes as U-Boot boots B for the first time (its first
	// attempt is counted); from then on the registrar is blocked.
	vm.WaitLine(t, "HPBOOT boot slot=B", bootTimeout)
	vm.Kill(t)
	wantEnv(t, p.disk, map[string]string{"BOOT_ORDER": "B A", "BOOT_B_LEFT": "2"})
	for i := 1; i <= attempts; i++ {
		st := blockedBoot(t, p, "B", "pending")
		wantField(t, st, "floor", "1")
		wantField(t, st, "B", "pending/3/2")
		wantField(t, st, "rollback", "false")
	}
	vm = p.boot(t, "")
	vm.WaitLine(t, "HPBOOT boot slot=B", bootTimeout)
	wantField(t, vm.WaitMarker(t, "registered", bootTimeout), "slot", "B")
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "B")
	vm.WaitMarker(t, "floor=2", bootTimeout)
	st := vm.WaitMarker(t, "status", bootTimeout)
	wantField(t, st, "B", "good/3/2")
	wantField(t, st, "order", "B")
	vm.Kill(t)
	wantEnv(t, p.disk, map[string]string{"BOOT_ORDER": "B", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "3"})
	t.Logf("scenario pending update, registrar blocked: %v", time.Since(start).Round(time.Millisecond))
}
