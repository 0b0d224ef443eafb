package netif

import (
	"fmt"
	"net/netip"
)

// Up sets IFF_UP on the interface called name.
func Up(name string) error { return up(name) }

// AddAddress adds the IPv4 address p (e.g. 10.0.2.15/24) to the interface
// called name, replacing the same address if present.
func AddAddress(name string, p netip.Prefix) error {
	if !p.Addr().Is4() {
		return fmt.Errorf("netif: address %v: only IPv4 is supported", p)
	}
	return addAddress(name, p)
}

// AddDefaultRoute adds or replaces the IPv4 default route via gw on the
// interface called name.
func AddDefaultRoute(name string, gw netip.Addr) error {
	if !gw.Is4() {
		return fmt.Errorf("netif: gateway %v: only IPv4 is supported", gw)
	}
	return addDefaultRoute(name, gw)
}
