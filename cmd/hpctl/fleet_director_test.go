package main

import (
	"strings"
	"testing"
)

// TestFleetDirectorUsage: the assignment commands want exactly one scope
// and their argument, and say so before they reach a server.
func TestFleetDirectorUsage(t *testing.T) {
	admin := []string{"--server", "https://127.0.0.1:1", "--pki", t.TempDir()}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"fleet", "config", "set", "doc.toml"}, "exactly one of --group and --device"},
		{[]string{"fleet", "config", "set", "--group", "g", "--device", "dev-0123456789abcdef0123456789abcdef", "doc.toml"}, "exactly one"},
		{[]string{"fleet", "config", "set", "--group", "g"}, "want one FILE"},
		{[]string{"fleet", "config", "show", "--device", "dev-1"}, "want dev- and 32 hex digits"},
		{[]string{"fleet", "config", "frobnicate", "--group", "g"}, "unknown command"},
		{[]string{"fleet", "firmware", "assign", "--group", "g"}, "want one NAME"},
		{[]string{"fleet", "firmware", "upgrade", "--group", "g"}, "want assign, clear or show"},
		{[]string{"fleet", "device", "provision", "nope"}, "want one device ID"},
		{[]string{"fleet", "device", "rotate"}, "want one device ID"},
	}
	for _, tt := range tests {
		so, se, code := hpctl(t, append(tt.args, admin...)...)
		if code != 2 || !strings.Contains(se, tt.want) {
			t.Errorf("hpctl %s: exit %d\n%s%s\nwant exit 2 saying %q", strings.Join(tt.args, " "), code, so, se, tt.want)
		}
	}
}
