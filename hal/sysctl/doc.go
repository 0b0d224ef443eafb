// Package sysctl reads and writes kernel parameters under /proc/sys by their
// dotted names ("net.ipv4.conf.all.accept_redirects").
//
// Threat: a key is a path. Keys are checked against a strict grammar before
// they touch the filesystem, so no key names a file outside the sysctl
// tree. Values are compared with whitespace normalised, the way sysctl(8)
// prints them.
//
// Like all of hal/ it holds mechanism, not policy; it imports nothing of
// hardphone's. system builds it and agent/lockdown uses it.
package sysctl
