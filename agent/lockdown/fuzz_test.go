package lockdown

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the policy parser. Oracle: it never
// panics; a refusal is a *PolicyError whose line lies inside the input; an
// accepted policy survives MarshalTOML and Parse unchanged, and MarshalTOML
// is canonical.
//
//fuzz:budget 40000
func FuzzParse(f *testing.F) {
	f.Add([]byte(readmeExample(f)))
	f.Add([]byte(listenerHead))
	f.Add([]byte("version = 1\n[rtp]\nports = [20000, 20100]\n[sysctl]\n\"net.ipv4.ip_local_port_range\" = \"10000 19999\"\nnet.ipv4.ip_forward = 0\n"))
	f.Add([]byte("version = 1\n[firewall]\noutbound = \"open\"\nloopback = \"restrict\"\n[[service]]\nname = \"dropbear\"\nprocesses = [\"dropbear\", \"dbclient\"]\n"))
	f.Add([]byte("version = 1\nlistener = [{name = \"a\", proto = \"udp\", port = 1, from = [\"::/0\"]}]\n"))
	f.Add([]byte("version = 1\n[[listener]]\nname = \"\"\"\n[[x]]\n\"\"\"\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse(src)
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse() error %v (%T) is not a *PolicyError", err, err)
			}
			if n := strings.Count(string(src), "\n") + 1; pe.Line < 0 || pe.Line > n || pe.OtherLine < 0 || pe.OtherLine > n {
				t.Fatalf("Parse() error %v: line %d/%d outside the %d lines of input", err, pe.Line, pe.OtherLine, n)
			}
			return
		}
		out := p.MarshalTOML()
		q, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(MarshalTOML()) = %v\ninput: %q\noutput:\n%s", err, src, out)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the policy:\n%+v\n%+v", p, q)
		}
		if again := q.MarshalTOML(); string(again) != string(out) {
			t.Fatalf("MarshalTOML not canonical:\n%s\n%s", out, again)
		}
		if _, err := ruleset(p); err != nil {
			t.Fatalf("accepted policy renders no ruleset: %v", err)
		}
	})
}
