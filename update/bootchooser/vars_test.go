package bootchooser

import (
	"maps"
	"slices"
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
