//go:build !linux

package netif

import "net/netip"

func up(name string) error                             { return ErrUnsupported }
func addAddress(name string, p netip.Prefix) error     { return ErrUnsupported }
func addDefaultRoute(name string, gw netip.Addr) error { return ErrUnsupported }
