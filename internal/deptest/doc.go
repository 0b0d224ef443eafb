// Package deptest checks a package's import graph from its deps_test.go, in
// the style of tailscale's deptest: upward imports and test-only packages
// are banned from production code. Only _test.go files import it.
package deptest
