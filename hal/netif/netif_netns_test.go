package netif

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/test"
)

// TestConfigureLoopback configures lo in the private namespace the way PID 1
// configures eth0 and reads the result back from the kernel.
func TestConfigureLoopback(t *testing.T) {
	if !test.InNetns() {
		t.Skip("needs the private network namespace of test.RunInNetns")
	}
	if err := Up("lo"); err != nil {
		t.Fatalf("Up(lo) = %v, want nil", err)
	}
	p := netip.MustParsePrefix("10.9.9.15/24")
	if err := AddAddress("lo", p); err != nil {
		t.Fatalf("AddAddress(lo, %v) = %v, want nil", p, err)
	}
	// Adding it again replaces it: PID 1 may run its setup twice.
	if err := AddAddress("lo", p); err != nil {
		t.Fatalf("AddAddress(lo, %v) again = %v, want nil", p, err)
	}
	gw := netip.MustParseAddr("10.9.9.2")
	if err := AddDefaultRoute("lo", gw); err != nil {
		t.Fatalf("AddDefaultRoute(lo, %v) = %v, want nil", gw, err)
	}
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatalf("InterfaceByName(lo): %v", err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		t.Errorf("lo flags = %v, want up", ifi.Flags)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		t.Fatalf("lo addrs: %v", err)
	}
	found := false
	for _, a := range addrs {
		found = found || a.String() == p.String()
	}
	if !found {
		t.Errorf("lo addresses = %v, want %v among them", addrs, p)
	}
	// /proc/net/route: Iface Destination Gateway ..., hex in host order.
	routes, err := os.ReadFile("/proc/net/route")
	if err != nil {
		t.Fatalf("read routes: %v", err)
	}
	if !strings.Contains(string(routes), "lo\t00000000\t0209090A") {
		t.Errorf("/proc/net/route =\n%s\nwant a default route via 10.9.9.2 on lo", routes)
	}
}

func TestRefusesIPv6(t *testing.T) {
	if err := AddAddress("lo", netip.MustParsePrefix("2001:db8::1/64")); err == nil {
		t.Errorf("AddAddress(IPv6) = nil, want an error")
	}
	if err := AddDefaultRoute("lo", netip.MustParseAddr("2001:db8::1")); err == nil {
		t.Errorf("AddDefaultRoute(IPv6) = nil, want an error")
	}
}

func TestUnknownInterface(t *testing.T) {
	if err := Up("hp-no-such0"); err == nil {
		t.Errorf("Up(unknown) = nil, want an error")
	}
}
