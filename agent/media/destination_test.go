package media

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckDestination(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	own := []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}
	var none DestinationPolicy
	lab := DestinationPolicy{Allow: pfx("127.0.0.0/8", "169.254.0.0/16", "192.0.2.10/32", "198.51.100.7/32"), Own: own}
	everyone := DestinationPolicy{Allow: pfx("0.0.0.0/0", "::/0"), Own: own}
	onlyLAN := DestinationPolicy{Own: own, Check: func(ap netip.AddrPort) error {
		if !netip.MustParsePrefix("198.51.100.0/24").Contains(ap.Addr()) {
			return errors.New("outside rtp.peers")
		}
		return nil
	}}
	tests := []struct {
		name string
		p    DestinationPolicy
		dst  string
		want string // "" = allowed, else a word of the refusal
	}{
		{"public unicast", none, "198.51.100.7:30000", ""},
		{"loopback by default", none, "127.0.0.1:30000", "loopback"},
		{"ipv6 loopback", none, "[::1]:30000", "loopback"},
		{"unspecified", lab, "0.0.0.0:30000", "unspecified"},
		{"ipv6 unspecified", everyone, "[::]:30000", "unspecified"},
		{"broadcast", everyone, "255.255.255.255:30000", "broadcast"},
		{"multicast", none, "224.0.0.1:30000", "multicast"},
		{"multicast under allow-all", everyone, "239.1.2.3:30000", "multicast"},
		{"ipv6 multicast", everyone, "[ff02::1]:30000", "multicast"},
		{"link-local", none, "169.254.10.1:30000", "link-local"},
		{"ipv6 link-local", everyone, "[fe80::1]:30000", "link-local"},
		{"own address", DestinationPolicy{Own: own}, "192.0.2.10:30000", "own address"},
		{"own ipv6 address", everyone, "[2001:db8::10]:30000", "own address"},
		{"own address under allow-all", everyone, "192.0.2.10:30000", "own address"},
		{"port 80", none, "198.51.100.7:80", "below 1024"},
		{"port 0", everyone, "198.51.100.7:0", "port 0"},
		{"loopback under allow-all", everyone, "127.0.0.1:30000", "loopback"},
		{"loopback allowed by 127/8", lab, "127.0.0.1:30000", ""},
		{"loopback port 80 needs a host prefix", lab, "127.0.0.1:80", "below 1024"},
		{"link-local allowed by its /16", lab, "169.254.10.1:30000", ""},
		{"own address allowed by its /32", lab, "192.0.2.10:30000", ""},
		{"low port allowed by a host prefix", lab, "198.51.100.7:5004", ""},
		{"own RTP range on loopback", lab, "127.0.0.1:20010", "own RTP port"},
		{"own RTP range on own address", lab, "192.0.2.10:20010", "own RTP port"},
		{"another host's port in our range", none, "198.51.100.7:20010", ""},
		{"policy bound: inside", onlyLAN, "198.51.100.9:30000", ""},
		{"policy bound: outside", onlyLAN, "203.0.113.9:30000", "rtp.peers"},
		{"policy bound does not lift loopback", onlyLAN, "127.0.0.1:30000", "loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.checkDestination(netip.MustParseAddrPort(tt.dst), 20000, 20099)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("checkDestination(%s) = %v, want allowed", tt.dst, err)
			case tt.want != "" && err == nil:
				t.Errorf("checkDestination(%s) = nil, want refused (%s)", tt.dst, tt.want)
			case tt.want != "" && (!strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrDestination) || !errors.Is(err, ErrNotAcceptable)):
				t.Errorf("checkDestination(%s) = %v, want %q wrapping ErrDestination and ErrNotAcceptable", tt.dst, err, tt.want)
			}
		})
	}
}

// TestOfferDestinationRefused: an offer or answer whose c=, m= port or
// a=rtcp aims at a refused destination is not acceptable, and the session
// is left as it was.
func TestOfferDestinationRefused(t *testing.T) {
	for _, tt := range []struct{ name, edit string }{
		{"c= multicast", "c=IN IP4 224.0.0.1"},
		{"c= link-local", "c=IN IP4 169.254.1.1"},
		{"m= port 80", "m=audio 80 "},
		{"a=rtcp to port 53", "a=rtcp:53"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestSession(t, testConfig(t, "a", SecuritySDES))
			b := newTestSession(t, testConfig(t, "b", SecuritySDES))
			offer, err := a.Offer()
			if err != nil {
				t.Fatal(err)
			}
			edited := editSDP(t, string(offer), tt.edit)
			_, err = b.Answer([]byte(edited))
			if !errors.Is(err, ErrDestination) || !errors.Is(err, ErrNotAcceptable) {
				t.Fatalf("Answer(%s) = %v, want ErrDestination", tt.name, err)
			}
			if got := b.RemoteAddrs(); got != nil {
				t.Errorf("RemoteAddrs after a refused offer = %v, want nil", got)
			}
		})
	}
}

// editSDP applies one edit: a line prefix to replace ("c=IN IP4 ..."), an
// m= port, or an a=rtcp line to add (replacing rtcp-mux).
func editSDP(t *testing.T, sdp, edit string) string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(sdp, "\r\n"), "\r\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(edit, "c=") && strings.HasPrefix(l, "c="):
			lines[i] = edit
		case strings.HasPrefix(edit, "m=audio ") && strings.HasPrefix(l, "m=audio "):
			f := strings.Fields(l)
			lines[i] = edit + strings.Join(f[2:], " ")
		case strings.HasPrefix(edit, "a=rtcp:") && l == "a=rtcp-mux":
			lines[i] = fmt.Sprintf("%s IN IP4 127.0.0.1", edit)
		}
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}
