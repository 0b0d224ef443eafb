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
		{"help", []string{"--help"}, 0, "usage: hardphone <command>"},
		{"run help", []string{"run", "--help"}, 0, "usage: hardphone run"},
		{"call help after args", []string{"call", "sip:x@y", "--help"}, 0, "usage: hardphone call"},
		{"status help", []string{"status", "-h"}, 0, "usage: hardphone status"},
		{"creds help", []string{"creds", "--help"}, 0, "usage: hardphone creds"},
		{"creds set help", []string{"creds", "set", "--help"}, 0, "usage: hardphone creds set NAME"},
		{"identity csr help", []string{"identity", "csr", "--help"}, 0, "usage: hardphone identity csr"},
		{"update install help", []string{"update", "install", "--help"}, 0, "usage: hardphone update install"},
		{"update help", []string{"update", "help"}, 0, "usage: hardphone update <subcommand>"},
		{"lockdown check help", []string{"lockdown", "check", "--help"}, 0, "usage: hardphone lockdown check"},
		{"unknown flag", []string{"status", "--nope"}, 2, ""},
		{"creds rm without name", []string{"creds", "rm", "--state-dir", "/x"}, 2, ""},
		{"update install two bundles", []string{"update", "install", "a", "b"}, 2, ""},
		{"flags after arguments", []string{"creds", "rm", "sip/x", "--state-dir", "/nonexistent/state", "--tpm", "software:/nonexistent/kek"}, 1, ""},
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
