package lockdown

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/hardphone/hardphone/hal/services"
	"github.com/hardphone/hardphone/hal/sysctl"
)

// maxPolicySize bounds a policy file; a real one is a few kilobytes.
const maxPolicySize = 1 << 20

// SchemaVersion is the only policy version this package reads.
const SchemaVersion = 1

// Linux's default net.ipv4.ip_local_port_range, which the RTP range must
// stay clear of unless the policy moves it: replies to the phone's own
// outgoing UDP (DNS, NTP) arrive on these ports, and RTP ports pass only
// through pinholes.
const defaultEphemeralFirst, defaultEphemeralLast = 32768, 60999

// Load reads and validates a policy file.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("read policy %s: %w", path, err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// Parse validates policy TOML. Every error is a *PolicyError naming the
// line and key.
func Parse(src []byte) (*Policy, error) {
	if len(src) > maxPolicySize {
		return nil, &PolicyError{Err: fmt.Errorf("larger than %d bytes", maxPolicySize)}
	}
	var raw map[string]any
	if _, err := toml.Decode(string(src), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			// The decoder counts an error at a newline as the next line's;
			// the offset says which line the offending byte ends.
			line := pe.Position.Line
			if st := pe.Position.Start; st >= 0 && st <= len(src) {
				line = 1 + bytes.Count(src[:st], []byte("\n"))
			}
			return nil, &PolicyError{Line: line, Err: errors.New(pe.Message)}
		}
		return nil, &PolicyError{Err: err}
	}
	d := &decoder{lines: keyLines(string(src))}
	p, err := d.policy(&table{d: d, m: raw})
	if err != nil {
		return nil, err
	}
	return p, nil
}

type decoder struct {
	lines map[string]int
}

func (d *decoder) errAt(path string, format string, args ...any) error {
	return &PolicyError{Line: lineOf(d.lines, path), Key: path, Err: fmt.Errorf(format, args...)}
}

// conflict is an error between two keys.
func (d *decoder) conflict(path, other string, format string, args ...any) error {
	return &PolicyError{Line: lineOf(d.lines, path), Key: path, OtherLine: lineOf(d.lines, other), OtherKey: other,
		Err: fmt.Errorf(format, args...)}
}

// table is one TOML table being decoded; used records the keys read, so
// that done can refuse the rest.
type table struct {
	d    *decoder
	path string
	m    map[string]any
	used map[string]bool
}

func (t *table) key(k string) string { return join(t.path, k) }

func (t *table) get(k string) (any, bool) {
	if t.used == nil {
		t.used = map[string]bool{}
	}
	t.used[k] = true
	v, ok := t.m[k]
	return v, ok
}

// done refuses keys nothing read: an unknown key is most often a typo of a
// security setting.
func (t *table) done() error {
	var unknown []string
	for k := range t.m {
		if !t.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Slice(unknown, func(i, j int) bool {
		return lineOf(t.d.lines, t.key(unknown[i])) < lineOf(t.d.lines, t.key(unknown[j]))
	})
	return t.d.errAt(t.key(unknown[0]), "unknown key")
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case []any, []map[string]any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

func (t *table) str(k string, required bool) (string, bool, error) {
	v, ok := t.get(k)
	if !ok {
		if required {
			return "", false, t.d.errAt(t.key(k), "required")
		}
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, t.d.errAt(t.key(k), "%s, want a string", typeName(v))
	}
	return s, true, nil
}

func (t *table) integer(k string, required bool) (int64, bool, error) {
	v, ok := t.get(k)
	if !ok {
		if required {
			return 0, false, t.d.errAt(t.key(k), "required")
		}
		return 0, false, nil
	}
	n, ok := v.(int64)
	if !ok {
		return 0, false, t.d.errAt(t.key(k), "%s, want an integer", typeName(v))
	}
	return n, true, nil
}

func (t *table) port(k string) (uint16, error) {
	n, _, err := t.integer(k, true)
	if err != nil {
		return 0, err
	}
	if n < 1 || n > 65535 {
		return 0, t.d.errAt(t.key(k), "port %d, want 1 to 65535", n)
	}
	return uint16(n), nil
}

func (t *table) list(k string, required bool) ([]any, bool, error) {
	v, ok := t.get(k)
	if !ok {
		if required {
			return nil, false, t.d.errAt(t.key(k), "required")
		}
		return nil, false, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, false, t.d.errAt(t.key(k), "%s, want an array", typeName(v))
	}
	return l, true, nil
}

func (t *table) strs(k string, required bool) ([]string, bool, error) {
	l, ok, err := t.list(k, required)
	if err != nil || !ok {
		return nil, ok, err
	}
	out := make([]string, 0, len(l))
	for i, v := range l {
		s, ok := v.(string)
		if !ok {
			return nil, false, t.d.errAt(index(t.key(k), i), "%s, want a string", typeName(v))
		}
		out = append(out, s)
	}
	return out, true, nil
}

func (t *table) sub(k string) (*table, bool, error) {
	v, ok := t.get(k)
	if !ok {
		return nil, false, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false, t.d.errAt(t.key(k), "%s, want a table", typeName(v))
	}
	return &table{d: t.d, path: t.key(k), m: m}, true, nil
}

func (t *table) tables(k string) ([]*table, error) {
	v, ok := t.get(k)
	if !ok {
		return nil, nil
	}
	var ms []map[string]any
	switch l := v.(type) {
	case []map[string]any:
		ms = l
	case []any:
		for i, e := range l {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, t.d.errAt(index(t.key(k), i), "%s, want a table ([[%s]])", typeName(e), k)
			}
			ms = append(ms, m)
		}
	default:
		return nil, t.d.errAt(t.key(k), "%s, want an array of tables ([[%s]])", typeName(v), k)
	}
	out := make([]*table, len(ms))
	for i, m := range ms {
		out[i] = &table{d: t.d, path: index(t.key(k), i), m: m}
	}
	return out, nil
}

// validName checks listener and destination names: they end up in rule
// comments, logs and JSON.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if i > 0 {
			ok = ok || r == '-' || r == '_' || r == '.'
		}
		if !ok {
			return false
		}
	}
	return true
}

// validProcess checks a process name: what /proc/PID/comm or the executable
// name shows.
func validProcess(s string) bool {
	if len(s) == 0 || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.@+-:", r)) {
			return false
		}
	}
	return true
}

func validModule(s string) bool {
	if len(s) == 0 || len(s) > 55 { // MODULE_NAME_LEN less the NUL
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (t *table) name(k string) (string, error) {
	s, _, err := t.str(k, true)
	if err != nil {
		return "", err
	}
	if !validName(s) {
		return "", t.d.errAt(t.key(k), "%q, want 1 to 32 of [a-z0-9_.-] starting with a letter or digit", s)
	}
	return s, nil
}

func (t *table) proto(k string) (Proto, error) {
	s, _, err := t.str(k, true)
	if err != nil {
		return "", err
	}
	switch p := Proto(s); p {
	case TCP, UDP:
		return p, nil
	}
	return "", t.d.errAt(t.key(k), "%q, want \"tcp\" or \"udp\"", s)
}

func (t *table) process(k string) (string, error) {
	s, ok, err := t.str(k, false)
	if err != nil || !ok {
		return "", err
	}
	if !validProcess(s) {
		return "", t.d.errAt(t.key(k), "%q is not a process name", s)
	}
	return s, nil
}

// prefixes reads networks: CIDR prefixes, or bare addresses meaning one
// host. Host bits, zones and IPv4-mapped IPv6 are refused: each would mean
// something other than it seems.
func (t *table) prefixes(k string, required bool) ([]netip.Prefix, bool, error) {
	ss, ok, err := t.strs(k, required)
	if err != nil || !ok {
		return nil, ok, err
	}
	if len(ss) == 0 {
		return nil, true, t.d.errAt(t.key(k), "empty: list at least one network (\"0.0.0.0/0\" and \"::/0\" mean anywhere)")
	}
	var out []netip.Prefix
	for i, s := range ss {
		path := index(t.key(k), i)
		var p netip.Prefix
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(s)
			if err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		switch {
		case err != nil:
			return nil, true, t.d.errAt(path, "%q: want an IPv4 or IPv6 network (192.0.2.0/24) or address", s)
		case p.Addr().Zone() != "":
			return nil, true, t.d.errAt(path, "%q: zones are not allowed", s)
		case p.Addr().Is4In6():
			return nil, true, t.d.errAt(path, "%q: IPv4-mapped IPv6, write the IPv4 form", s)
		case p.Masked() != p:
			return nil, true, t.d.errAt(path, "%q has host bits set; the network is %s", s, p.Masked())
		case slices.Contains(out, p):
			return nil, true, t.d.errAt(path, "%q listed twice", s)
		}
		out = append(out, p)
	}
	return out, true, nil
}

func anywhere(ps []netip.Prefix) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Bits() == 0 })
}

func (d *decoder) policy(top *table) (*Policy, error) {
	p := &Policy{Loopback: LoopbackOpen, Outbound: OutboundRestrict}

	v, _, err := top.integer("version", true)
	if err != nil {
		return nil, err
	}
	if v != SchemaVersion {
		return nil, d.errAt("version", "%d, want %d", v, SchemaVersion)
	}

	if fw, ok, err := top.sub("firewall"); err != nil {
		return nil, err
	} else if ok {
		for _, k := range []struct {
			key string
			out *Mode
		}{{"loopback", &p.Loopback}, {"outbound", &p.Outbound}} {
			s, ok, err := fw.str(k.key, false)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			switch m := Mode(s); m {
			case "open", "restrict":
				*k.out = m
			default:
				return nil, d.errAt(fw.key(k.key), "%q, want \"open\" or \"restrict\"", s)
			}
		}
		if err := fw.done(); err != nil {
			return nil, err
		}
	}

	// Sysctls come first: the RTP range is checked against the ephemeral
	// port range they may set.
	sysctlPaths := map[string]string{}
	if sc, ok, err := top.sub("sysctl"); err != nil {
		return nil, err
	} else if ok {
		if err := d.sysctls(sc, nil, p, sysctlPaths); err != nil {
			return nil, err
		}
		sort.Slice(p.Sysctls, func(i, j int) bool { return p.Sysctls[i].Key < p.Sysctls[j].Key })
	}

	if rt, ok, err := top.sub("rtp"); err != nil {
		return nil, err
	} else if ok {
		if p.RTP, err = d.rtp(rt, p, sysctlPaths); err != nil {
			return nil, err
		}
	}

	ls, err := top.tables("listener")
	if err != nil {
		return nil, err
	}
	for _, lt := range ls {
		l, err := d.listener(lt)
		if err != nil {
			return nil, err
		}
		for j, o := range p.Listeners {
			if o.Name == l.Name {
				return nil, d.conflict(lt.key("name"), join(index("listener", j), "name"), "listener %q is defined twice", l.Name)
			}
			if o.Proto == l.Proto && o.Port == l.Port {
				return nil, d.conflict(lt.key("port"), join(index("listener", j), "port"), "%s port %d is already listener %q", l.Proto, l.Port, o.Name)
			}
		}
		if l.Proto == UDP && p.RTP.Contains(l.Port) {
			return nil, d.conflict(lt.key("port"), "rtp.ports", "udp port %d is inside the RTP range %d-%d", l.Port, p.RTP.First, p.RTP.Last)
		}
		p.Listeners = append(p.Listeners, l)
	}

	outs, err := top.tables("outbound")
	if err != nil {
		return nil, err
	}
	if len(outs) > 0 && p.Outbound == OutboundOpen {
		return nil, d.conflict(outs[0].path, "firewall.outbound", "[[outbound]] entries need firewall.outbound = \"restrict\"; with \"open\" they would mean nothing")
	}
	for _, ot := range outs {
		o, err := d.destination(ot)
		if err != nil {
			return nil, err
		}
		for j, e := range p.Destinations {
			if e.Name == o.Name {
				return nil, d.conflict(ot.key("name"), join(index("outbound", j), "name"), "outbound %q is defined twice", o.Name)
			}
		}
		p.Destinations = append(p.Destinations, o)
	}

	svcs, err := top.tables("service")
	if err != nil {
		return nil, err
	}
	for _, st := range svcs {
		s, err := d.service(st)
		if err != nil {
			return nil, err
		}
		for j, e := range p.Services {
			if e.Name == s.Name {
				return nil, d.conflict(st.key("name"), join(index("service", j), "name"), "service %q is listed twice", s.Name)
			}
		}
		p.Services = append(p.Services, s)
	}

	if mt, ok, err := top.sub("modules"); err != nil {
		return nil, err
	} else if ok {
		ms, _, err := mt.strs("block", false)
		if err != nil {
			return nil, err
		}
		for i, m := range ms {
			if !validModule(m) {
				return nil, d.errAt(index(mt.key("block"), i), "%q is not a module name", m)
			}
			m = normalizeModule(m)
			if slices.Contains(p.BlockModules, m) {
				return nil, d.errAt(index(mt.key("block"), i), "module %q listed twice", m)
			}
			p.BlockModules = append(p.BlockModules, m)
		}
		if err := mt.done(); err != nil {
			return nil, err
		}
	}

	if err := top.done(); err != nil {
		return nil, err
	}
	return p, nil
}

func (d *decoder) listener(t *table) (Listener, error) {
	var l Listener
	var err error
	if l.Name, err = t.name("name"); err != nil {
		return l, err
	}
	if l.Proto, err = t.proto("proto"); err != nil {
		return l, err
	}
	if l.Port, err = t.port("port"); err != nil {
		return l, err
	}
	if l.From, _, err = t.prefixes("from", true); err != nil {
		return l, err
	}
	if l.Process, err = t.process("process"); err != nil {
		return l, err
	}
	want := map[string]Proto{RoleSIPTLS: TCP, RoleSIPTCP: TCP, RoleSIPUDP: UDP}
	if w, ok := want[l.Name]; ok && l.Proto != w {
		return l, d.errAt(t.key("proto"), "listener %q is %s, not %s", l.Name, w, l.Proto)
	}
	if (l.Name == RoleAdmin || l.Name == RoleDebug) && anywhere(l.From) {
		return l, d.errAt(t.key("from"), "an %s listener open to every address is refused; name the management network", l.Name)
	}
	return l, t.done()
}

func (d *decoder) rtp(t *table, p *Policy, sysctlPaths map[string]string) (*RTP, error) {
	r := &RTP{}
	ports, _, err := t.list("ports", true)
	if err != nil {
		return nil, err
	}
	if len(ports) != 2 {
		return nil, d.errAt(t.key("ports"), "%d values, want [first, last]", len(ports))
	}
	var pr [2]int64
	for i, v := range ports {
		n, ok := v.(int64)
		if !ok {
			return nil, d.errAt(index(t.key("ports"), i), "%s, want an integer", typeName(v))
		}
		pr[i] = n
	}
	if pr[0] < 1024 || pr[1] > 65535 || pr[0] >= pr[1] {
		return nil, d.errAt(t.key("ports"), "[%d, %d]: want 1024 <= first < last <= 65535", pr[0], pr[1])
	}
	r.First, r.Last = uint16(pr[0]), uint16(pr[1])
	eFirst, eLast := int64(defaultEphemeralFirst), int64(defaultEphemeralLast)
	ephemeralKey, other := "net.ipv4.ip_local_port_range", ""
	for _, s := range p.Sysctls {
		if s.Key == ephemeralKey {
			f := strings.Fields(s.Value)
			if len(f) != 2 {
				return nil, d.errAt(sysctlPaths[ephemeralKey], "%q, want \"FIRST LAST\"", s.Value)
			}
			a, err1 := strconv.ParseInt(f[0], 10, 32)
			b, err2 := strconv.ParseInt(f[1], 10, 32)
			if err1 != nil || err2 != nil || a > b {
				return nil, d.errAt(sysctlPaths[ephemeralKey], "%q, want \"FIRST LAST\"", s.Value)
			}
			eFirst, eLast, other = a, b, sysctlPaths[ephemeralKey]
		}
	}
	if pr[0] <= eLast && eFirst <= pr[1] {
		if other == "" {
			return nil, d.errAt(t.key("ports"), "[%d, %d] overlaps the kernel's ephemeral ports %d-%d; move it or set sysctl net.ipv4.ip_local_port_range", pr[0], pr[1], eFirst, eLast)
		}
		return nil, d.conflict(t.key("ports"), other, "[%d, %d] overlaps the ephemeral ports %d-%d", pr[0], pr[1], eFirst, eLast)
	}
	peers, ok, err := t.prefixes("peers", false)
	if err != nil {
		return nil, err
	}
	if !ok {
		peers = []netip.Prefix{netip.PrefixFrom(netip.IPv4Unspecified(), 0), netip.PrefixFrom(netip.IPv6Unspecified(), 0)}
	}
	r.Peers = peers
	if r.Process, err = t.process("process"); err != nil {
		return nil, err
	}
	return r, t.done()
}

func (d *decoder) destination(t *table) (Destination, error) {
	var o Destination
	var err error
	if o.Name, err = t.name("name"); err != nil {
		return o, err
	}
	if o.Proto, err = t.proto("proto"); err != nil {
		return o, err
	}
	if o.Port, err = t.port("port"); err != nil {
		return o, err
	}
	if o.To, _, err = t.prefixes("to", true); err != nil {
		return o, err
	}
	return o, t.done()
}

func (d *decoder) service(t *table) (Service, error) {
	var s Service
	var err error
	if s.Name, _, err = t.str("name", true); err != nil {
		return s, err
	}
	if services.ValidName(s.Name) != nil {
		return s, d.errAt(t.key("name"), "%q is not a service name", s.Name)
	}
	procs, ok, err := t.strs("processes", false)
	if err != nil {
		return s, err
	}
	if ok && len(procs) == 0 {
		return s, d.errAt(t.key("processes"), "empty; leave it out to mean the service name")
	}
	if !ok {
		procs = []string{s.Name}
	}
	for i, pr := range procs {
		if !validProcess(pr) {
			return s, d.errAt(index(t.key("processes"), i), "%q is not a process name", pr)
		}
		if slices.Contains(procs[:i], pr) {
			return s, d.errAt(index(t.key("processes"), i), "%q listed twice", pr)
		}
	}
	s.Processes = procs
	return s, t.done()
}

// sysctls flattens the [sysctl] table: quoted keys ("net.ipv4.ip_forward")
// and dotted keys (net.ipv4.ip_forward, which TOML nests) both work.
func (d *decoder) sysctls(t *table, prefix []string, p *Policy, paths map[string]string) error {
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, _ := t.get(k)
		segs := append(slices.Clone(prefix), strings.Split(k, ".")...)
		path := t.key(k)
		if sub, ok := v.(map[string]any); ok {
			if err := d.sysctls(&table{d: d, path: path, m: sub}, segs, p, paths); err != nil {
				return err
			}
			continue
		}
		name := strings.Join(segs, ".")
		if err := sysctl.ValidKey(name); err != nil {
			return d.errAt(path, "%q is not a sysctl name", name)
		}
		var val string
		switch x := v.(type) {
		case string:
			val = sysctl.Normalize(x)
			if val == "" || len(val) > 256 || strings.IndexFunc(x, func(r rune) bool { return (r < 0x20 && r != '\t') || r > 0x7e }) >= 0 {
				return d.errAt(path, "want 1 to 256 printable ASCII characters")
			}
		case int64:
			val = strconv.FormatInt(x, 10)
		default:
			return d.errAt(path, "%s, want a string or an integer", typeName(v))
		}
		if other, dup := paths[name]; dup {
			// Name the later of the two: the earlier one reads as the
			// original.
			if lineOf(d.lines, other) > lineOf(d.lines, path) {
				path, other = other, path
			}
			return d.conflict(path, other, "sysctl %s is set twice", name)
		}
		paths[name] = path
		p.Sysctls = append(p.Sysctls, Sysctl{Key: name, Value: val})
	}
	return nil
}
