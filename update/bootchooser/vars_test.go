package bootchooser

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestSlotFromCmdline(t *testing.T) {
	tests := []struct{ in, want string }{
		{"console=ttyAMA0 rauc.slot=B quiet", "B"},
		{"rauc.slot=A rauc.slot=B", "B"},
		{"console=ttyAMA0", ""},
		{"xrauc.slot=A", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := SlotFromCmdline(tt.in); got != tt.want {
			t.Errorf("SlotFromCmdline(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		vars      map[string]string
		wantNext  string
		wantFirst string
		wantLeft  map[string]int
	}{
		{"A primary", map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0"}, "A", "A", map[string]int{"A": 3, "B": 0}},
		{"A spent", map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "2"}, "B", "A", map[string]int{"A": 0, "B": 2}},
		{"none left", map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "0"}, "", "B", map[string]int{"A": 0, "B": 0}},
		{"hand edit", map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "-1", "BOOT_B_LEFT": "x3"}, "", "B", map[string]int{}},
		{"empty", map[string]string{}, "", "", map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Parse(tt.vars, []string{"A", "B"})
			if got := st.Next(); got != tt.wantNext {
				t.Errorf("Next() = %q, want %q", got, tt.wantNext)
			}
			if got := st.First(); got != tt.wantFirst {
				t.Errorf("First() = %q, want %q", got, tt.wantFirst)
			}
			if !maps.Equal(st.Left, tt.wantLeft) {
				t.Errorf("Left = %v, want %v", st.Left, tt.wantLeft)
			}
		})
	}
}

func TestInitialAndVars(t *testing.T) {
	got := Initial([]string{"A", "B"}, 3)
	want := map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0"}
	if !maps.Equal(got, want) {
		t.Errorf("Initial = %v, want %v", got, want)
	}
	if v := Vars([]string{"A", "B"}); !slices.Equal(v, []string{"BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT"}) {
		t.Errorf("Vars = %v", v)
	}
}

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
