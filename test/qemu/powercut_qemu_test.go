package qemu

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/hal/ubootenv"
)

// bootsAandRegisters boots without a medium and waits until A is registered
// and marked good; it returns the status marker's fields.
func bootsAandRegisters(t *testing.T, p *phone) map[string]string {
	t.Helper()
	vm := p.boot(t, "")
	vm.WaitLine(t, "HPBOOT boot slot=A", bootTimeout)
	wantField(t, vm.WaitMarker(t, "init", bootTimeout), "slot", "A")
	reg := vm.WaitMarker(t, "registered", bootTimeout)
	wantField(t, reg, "slot", "A")
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "A")
	st := vm.WaitMarker(t, "status", bootTimeout)
	vm.Kill(t)
	t.Logf("A registered %v after power-on; timeline:\n%s", reg.At.Round(time.Millisecond), vm.Timeline())
	return st.Fields
}

// TestPowerCutDuringInstall: the power goes while the updater streams the
// image into B. B was made unbootable before the first byte, so the next
// power-on boots A, which registers and records the install as cut.
func TestPowerCutDuringInstall(t *testing.T) {
	requireFull(t)
	p := newPhone(t)
	f := p.f
	med := f.medium(t, "good", f.bundle(t, "good", "2", "2", "", nil))
	start := time.Now()
	vm := p.boot(t, med)
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "A")
	_, at := vm.WaitLine(t, `msg="install started"`, installTimeout)
	// The write phase takes seconds under emulation; cut one second in.
	time.Sleep(time.Second)
	vm.Kill(t)
	if n := len(vm.Markers("installed")); n != 0 {
		t.Fatalf("the install finished before the cut; cut earlier")
	}
	t.Logf("power cut 1s after the install started (%v after power-on)", at.Round(time.Millisecond))
	wantEnv(t, p.disk, map[string]string{"BOOT_ORDER": "A B", "BOOT_B_LEFT": "0"})
	st := bootsAandRegisters(t, p)
	if b := st["B"]; !strings.HasPrefix(b, "bad/0/") {
		t.Errorf("slot B after the cut install = %q, want bad/0/...", b)
	}
	t.Logf("scenario power cut during install: %v", time.Since(start).Round(time.Millisecond))
}

// TestPowerCutDuringEnvWrite: the power goes while U-Boot writes the
// decremented counter (the kill follows the script's "env-write" line, so
// it lands before, during or after the write), twice; and a torn copy, as
// a cut in the middle of a write leaves it, is written into the disk
// directly. Every following boot reads the intact copy, boots A and
// registers; the environment stays readable by hal/ubootenv and fw_printenv.
func TestPowerCutDuringEnvWrite(t *testing.T) {
	requireFull(t)
	p := newPhone(t)
	start := time.Now()
	for cut := 1; cut <= 2; cut++ {
		vm := p.boot(t, "")
		vm.WaitLine(t, "HPBOOT env-write", bootTimeout)
		vm.Kill(t)
		env := bootEnv(t, p.disk)
		t.Logf("cut %d during the env write: BOOT_A_LEFT=%s", cut, env["BOOT_A_LEFT"])
	}
	bootsAandRegisters(t, p)

	// A torn write: the copy U-Boot writes next (the one that is not
	// current) holds half new bytes, half old ones.
	cfg := envConfig(t, p.disk)
	cur, flags := currentCopy(t, cfg)
	torn := cfg.Copies[1-cur]
	fd, err := os.OpenFile(p.disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open disk: %v", err)
	}
	garbage := make([]byte, cfg.Size/2)
	for i := range garbage {
		garbage[i] = byte(i*7 + 1)
	}
	if _, err := fd.WriteAt(garbage, torn.Offset); err != nil {
		t.Fatalf("tear copy: %v", err)
	}
	if err := fd.Close(); err != nil {
		t.Fatalf("close disk: %v", err)
	}
	t.Logf("tore copy %d (current is %d with flags %d)", 1-cur, cur, flags)
	vm := p.boot(t, "")
	line, _ := vm.WaitLine(t, "HPBOOT env copy0=", bootTimeout)
	if !strings.Contains(line, "current="+string(rune('0'+cur))) {
		t.Fatalf("U-Boot chose %q, want current=%d (the intact copy)", line, cur)
	}
	wantField(t, vm.WaitMarker(t, "registered", bootTimeout), "slot", "A")
	wantField(t, vm.WaitMarker(t, "marked-good", bootTimeout), "slot", "A")
	vm.Kill(t)
	wantEnv(t, p.disk, map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0"})
	t.Logf("scenario power cut during env write: %v", time.Since(start).Round(time.Millisecond))
}

// currentCopy returns which copy hal/ubootenv reads as current, and its
// flags byte.
func currentCopy(t *testing.T, cfg ubootenv.Config) (int, byte) {
	t.Helper()
	var valid [2]bool
	var flags [2]byte
	for i, cp := range cfg.Copies {
		b := make([]byte, cfg.Size)
		fd, err := os.Open(cp.Path)
		if err != nil {
			t.Fatalf("open disk: %v", err)
		}
		_, err = fd.ReadAt(b, cp.Offset)
		fd.Close()
		if err != nil {
			t.Fatalf("read copy %d: %v", i, err)
		}
		if _, f, err := ubootenv.Decode(b, true); err == nil {
			valid[i], flags[i] = true, f
		}
	}
	switch {
	case valid[0] && valid[1]:
		// libubootenv's rule: larger wins, 0 follows 255, equal keeps 0.
		newer1 := flags[1] > flags[0]
		if flags[1] == 0 && flags[0] == 255 {
			newer1 = true
		}
		if flags[1] == 255 && flags[0] == 0 {
			newer1 = false
		}
		if newer1 {
			return 1, flags[1]
		}
		return 0, flags[0]
	case valid[0]:
		return 0, flags[0]
	case valid[1]:
		return 1, flags[1]
	}
	t.Fatalf("no valid environment copy")
	return 0, 0
}
