package qemu

import (
	"strings"
	"testing"
	"time"
)

// statusKeys are the fields of the status marker two boots must agree on.
var statusKeys = []string{"slot", "order", "A", "B", "floor", "rollback"}

func sameStatus(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for _, k := range statusKeys {
		if got[k] != want[k] {
			t.Errorf("%s: status %s = %q, want %q (unchanged)", what, k, got[k], want[k])
		}
	}
}

// TestRejectedBundles: a bundle signed by a foreign CA and a validly signed
// bundle below the anti-rollback floor are refused before anything is
// written: slot B's bytes, the boot environment and the updater's status
// are the same across the refusals and a power cycle.
func TestRejectedBundles(t *testing.T) {
	requireFull(t)
	p := newPhone(t)
	f := p.f
	start := time.Now()
	cases := []struct {
		name, version, secver string
		foreign               bool
		want                  string // in the refusal
	}{
		{"badsig", "3", "3", true, "sign"},
		{"old", "0", "0", false, "floor"},
	}
	wantB := slotHash(t, p.disk, "B")
	var before map[string]string
	for _, c := range cases {
		signer := &f.upki.Leaf
		if c.foreign {
			signer = &f.upki.ForeignLeaf
		}
		med := f.medium(t, c.name, f.bundle(t, c.name, c.version, c.secver, "", signer))
		vm := p.boot(t, med)
		wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "A")
		st := vm.WaitMarker(t, "status", bootTimeout)
		if before == nil {
			before = st.Fields
		}
		sameStatus(t, c.name+" before", st.Fields, before)
		vm.WaitMarker(t, "install-start", bootTimeout)
		rej := vm.WaitMarker(t, "install-rejected", installTimeout)
		if e := rej.Fields["error"]; !strings.Contains(e, c.want) {
			t.Errorf("%s: refusal %q, want it to mention %q", c.name, e, c.want)
		}
		after := vm.WaitMarker(t, "status", bootTimeout)
		sameStatus(t, c.name+" after the refusal", after.Fields, before)
		vm.Kill(t)
		t.Logf("%s refused: %s", c.name, rej.Fields["error"])
		if got := slotHash(t, p.disk, "B"); got != wantB {
			t.Errorf("%s: slot B changed although the bundle was refused", c.name)
		}
		wantEnv(t, p.disk, map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0"})
	}
	// A power cycle later, nothing has changed either.
	sameStatus(t, "after a reboot", bootsAandRegisters(t, p), before)
	if got := slotHash(t, p.disk, "B"); got != wantB {
		t.Errorf("slot B changed across the reboot")
	}
	t.Logf("scenario rejected bundles: %v", time.Since(start).Round(time.Millisecond))
}
