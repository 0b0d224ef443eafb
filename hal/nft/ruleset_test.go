package nft

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestRulesetValidate(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name string
		rs   Ruleset
	}{
		{"bad proto", Ruleset{In: []Allow{{Proto: 1, Port: 1, Net: p("10.0.0.0/8")}}}},
		{"port 0", Ruleset{In: []Allow{{Proto: TCP, Net: p("10.0.0.0/8")}}}},
		{"no net", Ruleset{In: []Allow{{Proto: TCP, Port: 1}}}},
		{"host bits", Ruleset{In: []Allow{{Proto: TCP, Port: 1, Net: p("10.0.0.1/8")}}}},
		{"mapped", Ruleset{In: []Allow{{Proto: TCP, Port: 1, Net: p("::ffff:10.0.0.1/128")}}}},
		{"label", Ruleset{In: []Allow{{Proto: TCP, Port: 1, Net: p("10.0.0.0/8"), Label: "Bad Label"}}}},
		{"udp in rtp", Ruleset{RTP: PortRange{2000, 2010}, In: []Allow{{Proto: UDP, Port: 2005, Net: p("10.0.0.0/8")}}}},
		{"out unfiltered", Ruleset{Out: []Allow{{Proto: TCP, Port: 1, Net: p("10.0.0.0/8")}}}},
		{"rtp reversed", Ruleset{RTP: PortRange{2010, 2000}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.rs.Describe(); !errors.Is(err, errBadRuleset) {
				t.Fatalf("Describe() error = %v, want errBadRuleset", err)
			}
		})
	}
	if _, err := (Ruleset{}).Describe(); err != nil {
		t.Errorf("Describe(empty) = %v, want nil", err)
	}
}

func TestDescribeOrder(t *testing.T) {
	rs := Ruleset{
		AcceptLoopback: true,
		In:             []Allow{{Proto: TCP, Port: 5061, Net: netip.MustParsePrefix("10.0.0.2/32"), Label: "sip-tls"}},
		RTP:            PortRange{16384, 16639},
	}
	lines, err := rs.Describe()
	if err != nil {
		t.Fatalf("Describe() = %v", err)
	}
	idx := func(sub string) int {
		return slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, sub) })
	}
	// Pinholes must decide RTP before conntrack state can let it through,
	// and listeners come after both.
	order := []string{"iifname lo accept", "ct state invalid", "@rtp4", "rtp without pinhole", "ct state established", "th dport 5061"}
	for i := 1; i < len(order); i++ {
		if a, b := idx(order[i-1]), idx(order[i]); a < 0 || b < 0 || a > b {
			t.Errorf("Describe(): %q (line %d) must come before %q (line %d):\n%s", order[i-1], a, order[i], b, strings.Join(lines, "\n"))
		}
	}
	if idx("chain output { type filter hook output priority filter; policy accept; }") < 0 {
		t.Errorf("Describe(): unfiltered output chain must accept:\n%s", strings.Join(lines, "\n"))
	}
}

func TestLineDiff(t *testing.T) {
	tests := []struct {
		want, got, diff []string
	}{
		{[]string{"a", "b"}, []string{"a", "b"}, nil},
		{[]string{"a", "b"}, []string{"a"}, []string{"+ b"}},
		{[]string{"a"}, []string{"a", "x"}, []string{"- x"}},
		{[]string{"a", "b", "c"}, []string{"a", "c", "b"}, []string{"+ b", "- b"}},
		{nil, []string{"x"}, []string{"- x"}},
	}
	for _, tt := range tests {
		got := lineDiff(tt.want, tt.got)
		if len(got) != len(tt.diff) {
			t.Errorf("lineDiff(%q, %q) = %q, want %q", tt.want, tt.got, got, tt.diff)
			continue
		}
		for i := range got {
			if strings.TrimPrefix(got[i], "+ ") != strings.TrimPrefix(tt.diff[i], "+ ") && got[i] != tt.diff[i] {
				t.Errorf("lineDiff(%q, %q) = %q, want %q", tt.want, tt.got, got, tt.diff)
			}
		}
	}
}
