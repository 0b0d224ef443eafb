package lockdown

import (
	"fmt"
	"net/netip"
	"strings"
)

// MarshalTOML writes p in the policy schema, canonically: the same policy
// always gives the same bytes, and Parse of them gives p back.
func (p *Policy) MarshalTOML() []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("version = %d\n\n[firewall]\nloopback = %s\noutbound = %s\n", SchemaVersion, quote(string(p.Loopback)), quote(string(p.Outbound)))
	for _, l := range p.Listeners {
		w("\n[[listener]]\nname = %s\nproto = %s\nport = %d\nfrom = %s\n", quote(l.Name), quote(string(l.Proto)), l.Port, prefixList(l.From))
		if l.Process != "" {
			w("process = %s\n", quote(l.Process))
		}
	}
	if r := p.RTP; r != nil {
		w("\n[rtp]\nports = [%d, %d]\npeers = %s\n", r.First, r.Last, prefixList(r.Peers))
		if r.Process != "" {
			w("process = %s\n", quote(r.Process))
		}
	}
	for _, o := range p.Destinations {
		w("\n[[outbound]]\nname = %s\nproto = %s\nport = %d\nto = %s\n", quote(o.Name), quote(string(o.Proto)), o.Port, prefixList(o.To))
	}
	for _, s := range p.Services {
		qs := make([]string, len(s.Processes))
		for i, pr := range s.Processes {
			qs[i] = quote(pr)
		}
		w("\n[[service]]\nname = %s\nprocesses = [%s]\n", quote(s.Name), strings.Join(qs, ", "))
	}
	if len(p.BlockModules) > 0 {
		qs := make([]string, len(p.BlockModules))
		for i, m := range p.BlockModules {
			qs[i] = quote(m)
		}
		w("\n[modules]\nblock = [%s]\n", strings.Join(qs, ", "))
	}
	if len(p.Sysctls) > 0 {
		w("\n[sysctl]\n")
		for _, s := range p.Sysctls {
			w("%s = %s\n", quote(s.Key), quote(s.Value))
		}
	}
	return []byte(b.String())
}

func prefixList(ps []netip.Prefix) string {
	qs := make([]string, len(ps))
	for i, p := range ps {
		qs[i] = quote(p.String())
	}
	return "[" + strings.Join(qs, ", ") + "]"
}

// quote writes a TOML basic string. Every string in a valid policy is
// printable ASCII; anything else is escaped as \uXXXX all the same.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || r > 0x7e:
			if r > 0xffff {
				b.WriteString(`\U` + fmt.Sprintf("%08X", r))
			} else {
				b.WriteString(`\u` + fmt.Sprintf("%04X", r))
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
