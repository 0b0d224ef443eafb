// Package netif configures network interfaces over rtnetlink (NETLINK_ROUTE,
// with golang.org/x/sys/unix only): set a link up, add an IPv4 address, add
// a default route. It is what a static PID 1 needs where there is no ip(8)
// and the kernel has no ip= autoconfiguration.
//
// Threat: a half-configured interface that looks up. Every request asks for
// an acknowledgement and the kernel's answer is returned as the error, so
// PID 1 knows whether the network it reports is the one it set.
//
// Like all of hal/ it holds device code and no policy and imports nothing of
// hardphone's. system imports it, for PID 1.
package netif
