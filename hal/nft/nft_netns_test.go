//go:build linux

package nft

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/test"
)

func TestMain(m *testing.M) { test.RunInNetns(m) }

func sampleRuleset() Ruleset {
	return Ruleset{
		AcceptLoopback: true,
		In: []Allow{
			{Proto: TCP, Port: 5061, Net: netip.MustParsePrefix("10.0.0.0/8"), Label: "sip-tls"},
			{Proto: TCP, Port: 5061, Net: netip.MustParsePrefix("2001:db8::10/128"), Label: "sip-tls"},
			{Proto: UDP, Port: 5060, Net: netip.MustParsePrefix("0.0.0.0/0"), Label: "sip-udp"},
		},
		FilterOutput: true,
		Out: []Allow{
			{Proto: TCP, Port: 5061, Net: netip.MustParsePrefix("192.0.2.10/32"), Label: "registrar"},
			{Proto: UDP, Port: 123, Net: netip.MustParsePrefix("2001:db8::/32"), Label: "time"},
		},
		RTP: PortRange{16384, 16639},
	}
}

// open returns a Conn in the test's private namespace and removes the
// hardphone table when the test ends.
func open(t *testing.T) *Conn {
	t.Helper()
	test.RequireNetns(t)
	c, err := Open()
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() {
		if err := c.Remove(); err != nil {
			t.Errorf("Remove() = %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return c
}

func TestApplyIdempotent(t *testing.T) {
	c := open(t)
	rs := sampleRuleset()
	changed, err := c.Apply(rs)
	if err != nil || !changed {
		t.Fatalf("first Apply() = %v, %v, want true, nil", changed, err)
	}
	d, err := c.Diff(rs)
	if err != nil || len(d) != 0 {
		t.Fatalf("Diff() after Apply = %q, %v, want none", d, err)
	}
	// Handles change when a rule is rewritten, so an identical -a listing
	// proves the second Apply wrote nothing.
	before := test.Nft(t, "-a", "list", "table", "inet", TableName)
	changed, err = c.Apply(rs)
	if err != nil || changed {
		t.Fatalf("second Apply() = %v, %v, want false, nil", changed, err)
	}
	if after := test.Nft(t, "-a", "list", "table", "inet", TableName); after != before {
		t.Errorf("second Apply changed the table:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// nft itself must understand every rule we wrote.
	for _, want := range []string{
		"policy drop;",
		`iifname "lo" accept`,
		"tcp dport 5061 ip saddr 10.0.0.0/8 accept",
		"ip6 saddr 2001:db8::10 accept",
		"ct state established,related accept",
		"ip saddr . udp sport . udp dport @rtp4 accept",
		"ip6 daddr . udp dport . udp sport @rtp6 accept",
		"type ipv4_addr . inet_service . inet_service",
	} {
		if !strings.Contains(before, want) {
			t.Errorf("nft listing lacks %q:\n%s", want, before)
		}
	}
}

func TestOtherTablesUntouched(t *testing.T) {
	c := open(t)
	test.NftInput(t, `
table inet other {
	set s { type ipv4_addr; elements = { 192.0.2.1 } }
	chain input { type filter hook input priority -10; policy accept; tcp dport 22 accept; }
}
table ip legacy {
	chain c { tcp dport 80 counter; }
}
`)
	t.Cleanup(func() {
		test.Nft(t, "delete", "table", "inet", "other")
		test.Nft(t, "delete", "table", "ip", "legacy")
	})
	list := func() string {
		return test.Nft(t, "-a", "list", "table", "inet", "other") + test.Nft(t, "-a", "list", "table", "ip", "legacy")
	}
	before := list()
	rs := sampleRuleset()
	if _, err := c.Apply(rs); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	rs.AcceptLoopback = false
	rs.In = rs.In[:1]
	if _, err := c.Apply(rs); err != nil {
		t.Fatalf("Apply(changed) = %v", err)
	}
	if err := c.AddPinholes([]Pinhole{{netip.MustParseAddrPort("192.0.2.7:4000"), 16384}}); err != nil {
		t.Fatalf("AddPinholes() = %v", err)
	}
	others, err := c.OtherTables()
	if err != nil || !slices.Equal(others, []string{"inet other", "ip legacy"}) {
		t.Errorf("OtherTables() = %q, %v, want [inet other, ip legacy]", others, err)
	}
	if err := c.Remove(); err != nil {
		t.Fatalf("Remove() = %v", err)
	}
	if after := list(); after != before {
		t.Errorf("other tables changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestDiffFindsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper []string // nft arguments
		want   string   // a line the diff must contain
	}{
		{"extra rule", []string{"add", "rule", "inet", TableName, "input", "tcp", "dport", "23", "accept"}, "- input: rule handle"},
		{"policy accept", []string{"add", "chain", "inet", TableName, "input", "{ type filter hook input priority 0; policy accept; }"}, "- chain input { type filter hook input priority filter; policy accept; }"},
		{"extra chain", []string{"add", "chain", "inet", TableName, "sneaky"}, "- chain sneaky { }"},
		{"extra set", []string{"add", "set", "inet", TableName, "allow", "{ type ipv4_addr; }"}, "- set allow { type ipv4_addr; }"},
		{"deleted chain", []string{"delete", "chain", "inet", TableName, "forward"}, "+ chain forward"},
		{"table gone", []string{"delete", "table", "inet", TableName}, "+ table inet hardphone"},
		{"table dormant", []string{"add", "table", "inet", TableName, "{ flags dormant; }"}, "- table inet hardphone flags 0x1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := open(t)
			rs := sampleRuleset()
			if _, err := c.Apply(rs); err != nil {
				t.Fatalf("Apply() = %v", err)
			}
			test.Nft(t, tt.tamper...)
			d, err := c.Diff(rs)
			if err != nil {
				t.Fatalf("Diff() = %v", err)
			}
			if !slices.ContainsFunc(d, func(l string) bool { return strings.HasPrefix(l, tt.want) }) {
				t.Fatalf("Diff() = %q, want a line starting %q", d, tt.want)
			}
			changed, err := c.Apply(rs)
			if err != nil || !changed {
				t.Fatalf("repairing Apply() = %v, %v, want true, nil", changed, err)
			}
			if d, err := c.Diff(rs); err != nil || len(d) != 0 {
				t.Fatalf("Diff() after repair = %q, %v, want none", d, err)
			}
		})
	}
}

func TestDiffFindsModifiedRule(t *testing.T) {
	c := open(t)
	rs := sampleRuleset()
	if _, err := c.Apply(rs); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	// Same comment, wider source: only the expressions tell.
	list := test.Nft(t, "-a", "list", "chain", "inet", TableName, "input")
	var handle string
	for _, l := range strings.Split(list, "\n") {
		if strings.Contains(l, "ip saddr 10.0.0.0/8") {
			handle = l[strings.LastIndex(l, " ")+1:]
		}
	}
	if handle == "" {
		t.Fatalf("no sip-tls rule in listing:\n%s", list)
	}
	test.Nft(t, "replace", "rule", "inet", TableName, "input", "handle", handle,
		"meta", "nfproto", "ipv4", "tcp", "dport", "5061", "accept", "comment",
		`"meta nfproto ipv4 meta l4proto tcp th dport 5061 ip saddr 10.0.0.0/8 accept # sip-tls"`)
	d, err := c.Diff(rs)
	if err != nil || !slices.ContainsFunc(d, func(l string) bool { return strings.Contains(l, "expressions differ") }) {
		t.Fatalf("Diff() = %q, %v, want an 'expressions differ' line", d, err)
	}
}

func TestPinholes(t *testing.T) {
	c := open(t)
	if err := c.AddPinholes([]Pinhole{{netip.MustParseAddrPort("192.0.2.7:4000"), 16384}}); !errors.Is(err, ErrNoTable) {
		t.Fatalf("AddPinholes() before Apply = %v, want ErrNoTable", err)
	}
	rs := sampleRuleset()
	if _, err := c.Apply(rs); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	ps := []Pinhole{
		{netip.MustParseAddrPort("192.0.2.7:4000"), 16384},
		{netip.MustParseAddrPort("[::ffff:192.0.2.7]:4001"), 16385}, // mapped: lands in rtp4
		{netip.MustParseAddrPort("[2001:db8::7]:4000"), 16386},
	}
	if err := c.AddPinholes(ps); err != nil {
		t.Fatalf("AddPinholes() = %v", err)
	}
	if err := c.AddPinholes(ps[:1]); err != nil {
		t.Fatalf("AddPinholes(again) = %v", err)
	}
	got, err := c.Pinholes()
	if err != nil || len(got) != 3 {
		t.Fatalf("Pinholes() = %v, %v, want 3", got, err)
	}
	listing := test.Nft(t, "list", "set", "inet", TableName, SetRTP4)
	if !strings.Contains(listing, "192.0.2.7 . 4001 . 16385") {
		t.Errorf("rtp4 listing lacks the unmapped pinhole:\n%s", listing)
	}
	// A changed ruleset keeps open pinholes inside the new RTP range.
	rs.RTP = PortRange{16385, 16639}
	if _, err := c.Apply(rs); err != nil {
		t.Fatalf("Apply(new RTP range) = %v", err)
	}
	if got, err := c.Pinholes(); err != nil || len(got) != 2 {
		t.Fatalf("Pinholes() after re-apply = %v, %v, want the 2 in range", got, err)
	}
	if err := c.DelPinholes(ps); err != nil {
		t.Fatalf("DelPinholes() = %v", err)
	}
	if got, err := c.Pinholes(); err != nil || len(got) != 0 {
		t.Fatalf("Pinholes() after delete = %v, %v, want none", got, err)
	}
	bad := []Pinhole{
		{netip.MustParseAddrPort("0.0.0.0:4000"), 16384},
		{netip.MustParseAddrPort("224.0.0.1:4000"), 16384},
		{netip.MustParseAddrPort("192.0.2.7:0"), 16384},
		{netip.MustParseAddrPort("192.0.2.7:4000"), 0},
	}
	for _, p := range bad {
		if err := c.AddPinholes([]Pinhole{p}); !errors.Is(err, errBadPinhole) {
			t.Errorf("AddPinholes(%v) = %v, want errBadPinhole", p, err)
		}
	}
}
