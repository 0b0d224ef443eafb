package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    int
		wantOut string
	}{
		{"version", []string{"version"}, 0, runtime.GOOS + "/" + runtime.GOARCH},
		{"no command", nil, 2, ""},
		{"unknown command", []string{"telnetd"}, 2, ""},
		{"call without uri", []string{"call", "--config", "x.toml"}, 2, ""},
		{"run without config", []string{"run"}, 1, ""},
		{"status without config", []string{"status"}, 1, ""},
		{"bad config", []string{"run", "--config", "/nonexistent/hardphone.toml"}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if got := run(tt.args, &out, &errb); got != tt.want {
				t.Fatalf("run(%q) = %d, want %d (stderr %q)", tt.args, got, tt.want, errb.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("run(%q) stdout = %q, want it to contain %q", tt.args, out.String(), tt.wantOut)
			}
		})
	}
}
