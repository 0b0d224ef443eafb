//go:build !linux

package test

import (
	"errors"
	"net/netip"
	"testing"
)

// Peer is a second network namespace; only Linux has them.
type Peer struct {
	Name           string
	LocalIf        string
	Local4, Local6 netip.Addr
	Peer4, Peer6   []netip.Addr
}

// NewPeer skips the test, or fails it under CI=true: network namespaces
// need Linux.
func NewPeer(t testing.TB, n int) *Peer {
	t.Helper()
	missing(t, "network namespaces need Linux")
	return nil
}

// Do fails: there is no peer namespace off Linux.
func (p *Peer) Do(fn func() error) error { return errors.New("network namespaces need Linux") }
