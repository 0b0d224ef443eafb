package qemu

import (
	"strconv"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
)

// wantField fails unless marker m has key=want.
func wantField(t *testing.T, m test.Marker, key, want string) {
	t.Helper()
	got, err := m.Field(key)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("marker %s: %s = %q, want %q (%s)", m.Event, key, got, want, m.Line)
	}
}

// markerInt is a marker's integer field.
func markerInt(t *testing.T, m test.Marker, key string) int {
	t.Helper()
	v, err := m.Field(key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("marker %s: %s = %q: %v (%s)", m.Event, key, v, err, m.Line)
	}
	return n
}

// TestFirstBoot: the provisioned phone boots slot A, loads its identity key
// in the TPM, unseals the SIP password and registers to Kamailio over
// mutual TLS (Kamailio refuses clients without a certificate from the CA
// whose CN is the digest user), then marks A good.
func TestFirstBoot(t *testing.T) {
	p := newPhone(t)
	start := time.Now()
	vm := p.boot(t, "")
	wantField(t, vm.WaitMarker(t, "init", bootTimeout), "slot", "A")
	reg := vm.WaitMarker(t, "registered", bootTimeout)
	wantField(t, reg, "slot", "A")
	// The store says where its secrets are: the TPM, not a key file.
	wantField(t, reg, "credentials", "tpm")
	t.Logf("boot to registered: %v after QEMU started", reg.At.Round(time.Millisecond))
	r := p.k.WaitRegistered(t, sipUser, 10*time.Second)
	t.Logf("kamailio binding: %s via %s", r.Contact, r.Socket)
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "A")
	st := vm.WaitMarker(t, "status", bootTimeout)
	wantField(t, st, "floor", "1")
	wantField(t, st, "A", "good/3/")
	// Idle, the agent and then PID 1 give the code pages start-up used
	// back (README "Memory"), on the phone's own kernel.
	for _, m := range []string{"agent-code-released", "code-released"} {
		rel := vm.WaitMarker(t, m, bootTimeout)
		before, after := markerInt(t, rel, "before_kib"), markerInt(t, rel, "after_kib")
		if after >= before || after <= 0 {
			t.Errorf("%s: %d KiB of code resident before, %d after", m, before, after)
		}
		t.Logf("%s: code %d KiB -> %d KiB, process RSS %d KiB (anonymous %d) just after", m, before, after,
			markerInt(t, rel, "rss_kib"), markerInt(t, rel, "anon_kib"))
	}
	vm.Kill(t)
	t.Logf("timeline:\n%s", vm.Timeline())
	wantEnv(t, p.disk, map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0"})
	t.Logf("scenario first boot: %v", time.Since(start).Round(time.Millisecond))
}

// TestGoodUpdate: from a marked-good A the phone installs the bundle on its
// update medium into B, reboots, U-Boot boots B, B registers with the same
// TPM identity and sealed password, is marked good, and only then does the
// anti-rollback floor advance to B's security version; the floor has then
// passed A's (1), so A leaves the boot order with no attempts.
func TestGoodUpdate(t *testing.T) {
	p := newPhone(t)
	f := p.f
	med := f.medium(t, "good", f.bundle(t, "good", "2", "2", "", nil))
	start := time.Now()
	vm := p.boot(t, med)
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "A")
	vm.WaitMarker(t, "install-start", bootTimeout)
	inst := vm.WaitMarker(t, "installed", installTimeout)
	wantField(t, inst, "slot", "B")
	wantField(t, inst, "security_version", "2")
	vm.WaitMarker(t, "reboot", bootTimeout)
	vm.WaitLine(t, "HPBOOT boot slot=B", bootTimeout)
	wantField(t, vm.WaitMarker(t, "init", bootTimeout), "slot", "B")
	reg := vm.WaitMarker(t, "registered", bootTimeout)
	wantField(t, reg, "slot", "B")
	wantField(t, reg, "credentials", "tpm")
	if n := len(vm.Markers("floor=2")); n != 0 {
		t.Fatalf("floor advanced before B was marked good")
	}
	mg := vm.WaitMarker(t, "marked-good", bootTimeout)
	wantField(t, mg, "slot", "B")
	wantField(t, mg, "version", "2")
	vm.WaitMarker(t, "floor=2", bootTimeout)
	st := vm.WaitMarker(t, "status", bootTimeout)
	wantField(t, st, "order", "B")
	wantField(t, st, "A", "good/0/")
	wantField(t, st, "B", "good/3/2")
	// The medium is still attached: B must not install it again into A.
	vm.WaitMarker(t, "medium-skip", bootTimeout)
	vm.Kill(t)
	t.Logf("timeline:\n%s", vm.Timeline())
	wantEnv(t, p.disk, map[string]string{"BOOT_ORDER": "B", "BOOT_B_LEFT": "3", "BOOT_A_LEFT": "0"})
	t.Logf("scenario good update: %v (install %v after QEMU start, B registered %v)", time.Since(start).Round(time.Millisecond),
		inst.At.Round(time.Millisecond), reg.At.Round(time.Millisecond))
}
