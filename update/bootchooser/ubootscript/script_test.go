package ubootscript

import (
	"slices"
	"strings"
	"testing"
)

func testParams() ScriptParams {
	return ScriptParams{Board: "b", Interface: "mmc", Device: 1, EnvPartition: 5, EnvOffset: 0, EnvRedundantOffset: 0x4000,
		EnvSize: 0x4000, Attempts: 3, Slots: []ScriptSlot{{"A", 2}, {"B", 3}}, Image: "boot/Image", Initrd: "boot/initrd",
		Cmdline: "console=ttyS0", Env0: 0x1000, Env1: 0x2000, Tmp: 0x3000, Export: 0x10000}
}

// TestScript: the script names exactly the convention's variables and
// passes the slot on the command line under CmdlineKey.
func TestScript(t *testing.T) {
	b, err := Script(testParams())
	if err != nil {
		t.Fatalf("Script() = %v", err)
	}
	s := string(b)
	for _, want := range []string{
		"env import -c 0x1001 0x3fff BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT",
		`test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3`,
		`test ${BOOT_B_LEFT} -gt 0; then setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1; setenv hp_slot B; setenv hp_part 3; fi`,
		`setenv bootargs "console=ttyS0 rauc.slot=${hp_slot}"`,
		"mmc write 0x10000 ${hp_wblk} 0x20",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q", want)
		}
	}
}

func TestScriptRefuses(t *testing.T) {
	for name, edit := range map[string]func(*ScriptParams){
		"one slot":       func(p *ScriptParams) { p.Slots = p.Slots[:1] },
		"bad slot name":  func(p *ScriptParams) { p.Slots[1].Name = "B;reset" },
		"attempts 10":    func(p *ScriptParams) { p.Attempts = 10 },
		"attempts 0":     func(p *ScriptParams) { p.Attempts = 0 },
		"unaligned copy": func(p *ScriptParams) { p.EnvRedundantOffset = 0x4001 },
		"no interface":   func(p *ScriptParams) { p.Interface = "" },
	} {
		p := testParams()
		p.Slots = slices.Clone(p.Slots)
		edit(&p)
		if _, err := Script(p); err == nil {
			t.Errorf("%s: Script() = nil error, want a refusal", name)
		}
	}
}
