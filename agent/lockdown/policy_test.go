package lockdown

import (
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

// readmeExample returns the ```toml block of the README's lockdown policy
// section, so the documented example is a tested one.
func readmeExample(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Lockdown policy\n")
	if !ok {
		t.Fatalf("README.md has no lockdown policy section")
	}
	_, rest, ok := strings.Cut(section, "```toml\n")
	if !ok {
		t.Fatalf("README.md lockdown section has no ```toml block")
	}
	ex, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("README.md: unterminated ```toml block")
	}
	return ex
}

func TestReadmeExample(t *testing.T) {
	p, err := Parse([]byte(readmeExample(t)))
	if err != nil {
		t.Fatalf("Parse(README example) = %v", err)
	}
	sip, ok := p.Listener(RoleSIPTLS)
	if !ok || sip.Port != 5061 || sip.Proto != TCP || len(sip.From) != 2 || sip.From[0] != netip.MustParsePrefix("192.0.2.10/32") {
		t.Errorf("Listener(sip-tls) = %+v, %v", sip, ok)
	}
	if p.RTP == nil || p.RTP.First != 16384 || p.RTP.Last != 16639 {
		t.Errorf("RTP = %+v, want 16384-16639", p.RTP)
	}
	if got := p.BlockModules; !reflect.DeepEqual(got, []string{"usb_storage", "bluetooth", "firewire_core"}) {
		t.Errorf("BlockModules = %q, want kernel spelling", got)
	}
	if p.Services[1].Name != "ssh" || !reflect.DeepEqual(p.Services[1].Processes, []string{"sshd"}) ||
		!reflect.DeepEqual(p.Services[0].Processes, []string{"dropbear"}) {
		t.Errorf("Services = %+v", p.Services)
	}
	if p.Sysctls[0].Key != "kernel.dmesg_restrict" || p.Sysctls[0].Value != "1" {
		t.Errorf("Sysctls not sorted or not normalised: %+v", p.Sysctls)
	}
	roundTrip(t, p)
}

func roundTrip(t *testing.T, p *Policy) {
	t.Helper()
	out := p.MarshalTOML()
	q, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(MarshalTOML()) = %v\n%s", err, out)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("Parse(MarshalTOML(p)) = %+v, want %+v", q, p)
	}
	if again := q.MarshalTOML(); string(again) != string(out) {
		t.Fatalf("MarshalTOML is not canonical:\n%s\nthen\n%s", out, again)
	}
}

func TestParseDefaults(t *testing.T) {
	p, err := Parse([]byte("version = 1\n"))
	if err != nil {
		t.Fatalf("Parse(minimal) = %v", err)
	}
	want := &Policy{Loopback: LoopbackOpen, Outbound: OutboundRestrict}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Parse(minimal) = %+v, want %+v", p, want)
	}
	roundTrip(t, p)

	p, err = Parse([]byte("version = 1\n[rtp]\nports = [20000, 20099]\n[sysctl]\nnet.ipv4.ip_forward = 0\n\"net.ipv4.ip_local_port_range\" = \"40000   50000\"\n"))
	if err != nil {
		t.Fatalf("Parse(rtp) = %v", err)
	}
	if len(p.RTP.Peers) != 2 || p.RTP.Peers[0].Bits() != 0 {
		t.Errorf("RTP.Peers = %v, want anywhere by default", p.RTP.Peers)
	}
	if want := []Sysctl{{"net.ipv4.ip_forward", "0"}, {"net.ipv4.ip_local_port_range", "40000 50000"}}; !reflect.DeepEqual(p.Sysctls, want) {
		t.Errorf("Sysctls = %q, want %q", p.Sysctls, want)
	}
	roundTrip(t, p)
}

const listenerHead = `version = 1

[rtp]
ports = [16384, 16639]

[[listener]]
name = "sip-tls"
proto = "tcp"
port = 5061
from = ["192.0.2.10"]
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		line  int
		key   string // the error's key; "" for syntax errors
		other int    // the conflicting line, 0 for none
		msg   string // part of the message
	}{
		{"syntax", "version = 1\n\n[firewall\nloopback = \"open\"\n", 3, "", 0, ""},
		{"unterminated string", "version = 1\nx = \"abc\n", 2, "", 0, ""},
		{"no version", "[firewall]\nloopback = \"open\"\n", 0, "version", 0, "required"},
		{"bad version", "\nversion = 2\n", 2, "version", 0, "want 1"},
		{"unknown top key", "version = 1\n\nlisten = []\n", 3, "listen", 0, "unknown key"},
		{"unknown nested key", listenerHead + "prcess = \"hardphone\"\n", 11, "listener[0].prcess", 0, "unknown key"},
		{"bad mode", "version = 1\n[firewall]\nloopback = \"yes\"\n", 3, "firewall.loopback", 0, "open"},
		{"bad proto", listenerHead + "\n[[listener]]\nname = \"x\"\nproto = \"sctp\"\nport = 1\nfrom = [\"10.0.0.0/8\"]\n", 14, "listener[1].proto", 0, "tcp"},
		{"port range", listenerHead + "\n[[listener]]\nname = \"x\"\nproto = \"tcp\"\nport = 70000\nfrom = [\"10.0.0.0/8\"]\n", 15, "listener[1].port", 0, "1 to 65535"},
		{"port type", listenerHead + "\n[[listener]]\nname = \"x\"\nproto = \"tcp\"\nport = \"80\"\nfrom = [\"10.0.0.0/8\"]\n", 15, "listener[1].port", 0, "string, want an integer"},
		{"duplicate port", listenerHead + "\n[[listener]]\nname = \"admin\"\nproto = \"tcp\"\nport = 5061\nfrom = [\"10.0.0.0/8\"]\n", 15, "listener[1].port", 9, "already listener"},
		{"duplicate name", listenerHead + "\n[[listener]]\nname = \"sip-tls\"\nproto = \"tcp\"\nport = 5062\nfrom = [\"10.0.0.0/8\"]\n", 13, "listener[1].name", 7, "defined twice"},
		{"udp in rtp range", listenerHead + "\n[[listener]]\nname = \"sip-udp\"\nproto = \"udp\"\nport = 16400\nfrom = [\"10.0.0.0/8\"]\n", 15, "listener[1].port", 4, "inside the RTP range"},
		{"role proto", listenerHead + "\n[[listener]]\nname = \"sip-udp\"\nproto = \"tcp\"\nport = 5060\nfrom = [\"10.0.0.0/8\"]\n", 14, "listener[1].proto", 0, "is udp"},
		{"admin to anyone", listenerHead + "\n[[listener]]\nname = \"admin\"\nproto = \"tcp\"\nport = 8443\nfrom = [\"10.0.0.0/8\", \"::/0\"]\n", 16, "listener[1].from", 0, "every address"},
		{"host bits", listenerHead + "\n[[listener]]\nname = \"x\"\nproto = \"tcp\"\nport = 1\nfrom = [\n  \"10.0.0.0/8\",\n  \"192.0.2.1/24\",\n]\n", 16, "listener[1].from[1]", 0, "192.0.2.0/24"},
		{"mapped", listenerHead + "\n[[listener]]\nname = \"x\"\nproto = \"tcp\"\nport = 1\nfrom = [\"::ffff:10.0.0.1\"]\n", 16, "listener[1].from[0]", 0, "IPv4-mapped"},
		{"empty from", listenerHead + "\n[[listener]]\nname = \"x\"\nproto = \"tcp\"\nport = 1\nfrom = []\n", 16, "listener[1].from", 0, "empty"},
		{"no from", listenerHead + "\n[[listener]]\nname = \"x\"\nproto = \"tcp\"\nport = 1\n", 12, "listener[1].from", 0, "required"},
		{"listener not array", "version = 1\n[listener]\nname = \"x\"\n", 2, "listener", 0, "array of tables"},
		{"bad name", listenerHead + "\n[[listener]]\nname = \"Web UI\"\nproto = \"tcp\"\nport = 1\nfrom = [\"10.0.0.1\"]\n", 13, "listener[1].name", 0, "[a-z0-9_.-]"},
		{"rtp reversed", "version = 1\n[rtp]\nports = [16639, 16384]\n", 3, "rtp.ports", 0, "first < last"},
		{"rtp ephemeral", "version = 1\n[rtp]\nports = [40000, 40100]\n", 3, "rtp.ports", 0, "ephemeral"},
		{"rtp vs sysctl", "version = 1\n[rtp]\nports = [20000, 20100]\n\n[sysctl]\n\"net.ipv4.ip_local_port_range\" = \"10000 30000\"\n", 3, "rtp.ports", 6, "overlaps"},
		{"outbound open", "version = 1\n[firewall]\noutbound = \"open\"\n\n[[outbound]]\nname = \"ntp\"\nproto = \"udp\"\nport = 123\nto = [\"192.0.2.1\"]\n", 5, "outbound[0]", 3, "restrict"},
		{"outbound dup", "version = 1\n[[outbound]]\nname = \"ntp\"\nproto = \"udp\"\nport = 123\nto = [\"192.0.2.1\"]\n[[outbound]]\nname = \"ntp\"\nproto = \"udp\"\nport = 124\nto = [\"192.0.2.1\"]\n", 8, "outbound[1].name", 3, "twice"},
		{"service name", "version = 1\n[[service]]\nname = \"../../bin/sh\"\n", 3, "service[0].name", 0, "service name"},
		{"service dup", "version = 1\n[[service]]\nname = \"sshd\"\n[[service]]\nname = \"sshd\"\n", 5, "service[1].name", 3, "twice"},
		{"module name", "version = 1\n[modules]\nblock = [\"usb-storage\", \"a/b\"]\n", 3, "modules.block[1]", 0, "module name"},
		{"module dup", "version = 1\n[modules]\nblock = [\"usb-storage\", \"usb_storage\"]\n", 3, "modules.block[1]", 0, "twice"},
		{"sysctl key", "version = 1\n[sysctl]\n\"net/ipv4/ip_forward\" = 0\n", 3, `sysctl."net/ipv4/ip_forward"`, 0, "sysctl name"},
		{"sysctl twice", "version = 1\n[sysctl]\n\"net.ipv4.ip_forward\" = 0\nnet.ipv4.ip_forward = 1\n", 4, "sysctl.net.ipv4.ip_forward", 3, "twice"},
		{"sysctl type", "version = 1\n[sysctl]\n\"net.ipv4.ip_forward\" = true\n", 3, `sysctl."net.ipv4.ip_forward"`, 0, "boolean"},
		{"after multiline string", "version = 1\n[[service]]\nname = \"\"\"\n[[listener]]\n\"\"\"\n", 3, "service[0].name", 0, "service name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.src))
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse() = %+v, %v, want a *PolicyError", p, err)
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("errors.Is(%v, ErrInvalidPolicy) = false", err)
			}
			if pe.Line != tt.line || pe.Key != tt.key || pe.OtherLine != tt.other {
				t.Errorf("Parse() error = line %d key %q other line %d (%v), want line %d key %q other line %d",
					pe.Line, pe.Key, pe.OtherLine, err, tt.line, tt.key, tt.other)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Parse() error = %q, want it to contain %q", err, tt.msg)
			}
			if tt.line > 0 && !strings.HasPrefix(err.Error(), "line ") {
				t.Errorf("Parse() error = %q, want it to start with the line", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/lockdown.toml"
	if err := os.WriteFile(path, []byte("version = 1\n\nbogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path+": line 3: bogus: unknown key") {
		t.Errorf("Load() = %v, want the file, line and key", err)
	}
	if _, err := Load(dir + "/missing.toml"); err == nil {
		t.Errorf("Load(missing) = nil, want an error")
	}
}

func TestKeyLines(t *testing.T) {
	src := `# comment
version = 1
[firewall]
loopback = "open" # trailing [ comment
[[listener]]
name = "a"
from = [
  "10.0.0.0/8", # ]
  '192.0.2.0/24',
]
[[listener]]
name = """
not = a key
"""
  port = 2
[sysctl]
"net.ipv4.ip_forward" = 0
net.ipv6 . conf = { all = 1 }
'kernel.x' = 1
`
	lines := keyLines(src)
	tests := []struct {
		path string
		line int
	}{
		{"version", 2},
		{"firewall", 3},
		{"firewall.loopback", 4},
		{"listener", 5},
		{"listener[0]", 5},
		{"listener[0].name", 6},
		{"listener[0].from", 7},
		{"listener[0].from[1]", 7},
		{"listener[1]", 11},
		{"listener[1].name", 12},
		{"listener[1].port", 15},
		{"listener[1].not", 11},
		{`sysctl."net.ipv4.ip_forward"`, 17},
		{"sysctl.net.ipv6.conf", 18},
		{"sysctl.net.ipv6.conf.all", 18},
		{`sysctl."kernel.x"`, 19},
		{"nothing.here", 0},
	}
	for _, tt := range tests {
		if got := lineOf(lines, tt.path); got != tt.line {
			t.Errorf("lineOf(%q) = %d, want %d (lines: %v)", tt.path, got, tt.line, lines)
		}
	}
}

func TestListenConfigRefuses(t *testing.T) {
	p, err := Parse([]byte(listenerHead))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		network, addr string
		ok            bool
	}{
		{"tcp", "0.0.0.0:5061", true},
		{"tcp6", "[::]:5061", true},
		{"udp4", "0.0.0.0:16384", true},
		{"udp", "[::]:16639", true},
		{"tcp", "0.0.0.0:5060", false},
		{"udp", "0.0.0.0:5061", false},
		{"tcp", "0.0.0.0:16384", false},
		{"tcp", "0.0.0.0:0", false},
		{"unix", "/tmp/x", false},
	}
	for _, tt := range tests {
		err := p.checkListen(tt.network, tt.addr)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrListenRefused)) {
			t.Errorf("checkListen(%s, %s) = %v, want ok=%v", tt.network, tt.addr, err, tt.ok)
		}
	}
}
