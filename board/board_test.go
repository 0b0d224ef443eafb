package board

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/agent/lockdown"
)

func TestLookup(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			b, err := Lookup(name)
			if err != nil {
				t.Fatalf("Lookup(%q) = %v, want a board", name, err)
			}
			if b.Name != name {
				t.Errorf("Lookup(%q).Name = %q", name, b.Name)
			}
		})
	}
	if _, err := Lookup("nokia-3310"); !errors.Is(err, ErrUnknownBoard) {
		t.Errorf("Lookup(unknown) = %v, want ErrUnknownBoard", err)
	}
}

// TestLookupFresh: a caller changing its copy does not change the next.
func TestLookupFresh(t *testing.T) {
	a, _ := Lookup("qemu-arm64")
	a.Modules[0].Name = "changed"
	b, _ := Lookup("qemu-arm64")
	if b.Modules[0].Name == "changed" {
		t.Fatalf("Lookup returned shared state")
	}
}

// TestQEMULayout pins the qemu-arm64 disk: the boot script, the updater
// and the image builder all derive from it, so a change is a new image.
func TestQEMULayout(t *testing.T) {
	b, err := Lookup("qemu-arm64")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		n     int
		name  string
		start int64
	}{{1, "boot", 1 << 20}, {2, "rootA", 9 << 20}, {3, "rootB", 73 << 20}, {4, "data", 137 << 20}, {5, "ubootenv", 201 << 20}}
	for _, w := range want {
		p, ok := b.Disk.Partition(w.n)
		start, err := b.Disk.Start(w.n)
		if !ok || err != nil || p.Name != w.name || start != w.start {
			t.Errorf("partition %d = %q at %d (%v), want %q at %d", w.n, p.Name, start, err, w.name, w.start)
		}
	}
	if got := b.Disk.Size(); got != 203<<20 {
		t.Errorf("disk size = %d, want %d", got, 203<<20)
	}
}

// TestReadLayout: a rig's layout file becomes a board the updater can use,
// and what is not a sound layout is refused.
func TestReadLayout(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "layout.toml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b, err := ReadLayout(write(`compatible = "hardphone-test"
booted_slot = "B"
[slots]
A = "/rig/a"
B = "/rig/b"
[env]
path = "/rig/env"
redundant_offset = 0x4000
`))
	if err != nil {
		t.Fatalf("ReadLayout() = %v", err)
	}
	if b.Compatible != "hardphone-test" || b.BootedSlot != "B" || b.Slots[0].Device != "/rig/a" || b.Slots[1].Device != "/rig/b" {
		t.Errorf("layout board = %+v", b)
	}
	if e := b.Env; e.Device != "/rig/env" || e.Offset != 0 || e.RedundantOffset != 0x4000 || e.Size != 0x4000 || e.Attempts != 3 {
		t.Errorf("layout env = %+v, want /rig/env 0x0 and 0x4000, size 0x4000, 3 attempts", e)
	}
	for name, body := range map[string]string{
		"unknown key":       "compatible = \"x\"\nsecurity = \"off\"\n[slots]\nA = \"/a\"\nB = \"/b\"\n[env]\npath = \"/e\"\nredundant_offset = 0x4000\n",
		"slot C":            "compatible = \"x\"\n[slots]\nA = \"/a\"\nC = \"/b\"\n[env]\npath = \"/e\"\nredundant_offset = 0x4000\n",
		"no redundant copy": "compatible = \"x\"\n[slots]\nA = \"/a\"\nB = \"/b\"\n[env]\npath = \"/e\"\n",
		"overlapping":       "compatible = \"x\"\n[slots]\nA = \"/a\"\nB = \"/b\"\n[env]\npath = \"/e\"\nredundant_offset = 0x2000\n",
		"same slot device":  "compatible = \"x\"\n[slots]\nA = \"/a\"\nB = \"/a\"\n[env]\npath = \"/e\"\nredundant_offset = 0x4000\n",
		"attempts 10":       "compatible = \"x\"\nattempts = 10\n[slots]\nA = \"/a\"\nB = \"/b\"\n[env]\npath = \"/e\"\nredundant_offset = 0x4000\n",
		"no compatible":     "[slots]\nA = \"/a\"\nB = \"/b\"\n[env]\npath = \"/e\"\nredundant_offset = 0x4000\n",
	} {
		if _, err := ReadLayout(write(body)); err == nil {
			t.Errorf("%s: ReadLayout() = nil error, want a refusal", name)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(b *Board)
		want   string
	}{
		{"ok", func(b *Board) {}, ""},
		{"overlapping env copies", func(b *Board) { b.Env.RedundantOffset = 0x2000 }, "overlap"},
		{"env past partition", func(b *Board) { b.Env.RedundantOffset = 1<<20 - 0x2000 }, "leave the partition"},
		{"unaligned env", func(b *Board) { b.Env.Offset = 100 }, "sector aligned"},
		{"slot on data partition", func(b *Board) { b.Slots[1].Partition, b.Slots[1].Device = 4, "/dev/vda4" }, "not a slot partition"},
		{"partition numbering", func(b *Board) { b.Disk.Partitions[1].Number = 7 }, "number 7"},
		{"two-digit attempts", func(b *Board) { b.Env.Attempts = 10 }, "attempts"},
		{"duplicate module", func(b *Board) { b.Modules = append(b.Modules, Module{Name: "virtio"}) }, "repeated"},
		{"module path", func(b *Board) { b.Modules[0].Name = "../evil" }, "plain name"},
		{"slow poll", func(b *Board) { b.Health.Poll = b.Watchdog.Timeout }, "too slow"},
		{"no trial deadline", func(b *Board) { b.Health.TrialDeadline = 0 }, "trial deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := qemuARM64()
			tt.change(b)
			err := b.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, errInvalid) {
				t.Fatalf("Validate() = %v, want an invalid-board error about %q", err, tt.want)
			}
		})
	}
}

// TestShippedLockdownPolicies: every policy a board ships parses under the
// lockdown schema, and a phone's covers the agent's default RTP range (the
// agent refuses media ports outside it).
func TestShippedLockdownPolicies(t *testing.T) {
	for _, name := range Names() {
		b, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if b.LockdownPolicyTOML == "" {
			if b.RequireLockdown {
				t.Errorf("board %s requires a lockdown policy and ships none", name)
			}
			continue
		}
		p, err := lockdown.Parse([]byte(b.LockdownPolicyTOML))
		if err != nil {
			t.Fatalf("board %s: its lockdown policy: %v", name, err)
		}
		if p.RTP == nil || p.RTP.First > 16384 || p.RTP.Last < 16639 {
			t.Errorf("board %s: policy RTP range %+v does not cover the default media ports 16384-16639", name, p.RTP)
		}
	}
}
