package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		args      []string
		wantPos   []string
		wantForce bool
	}{
		{[]string{"a.raucb", "--force"}, []string{"a.raucb"}, true},
		{[]string{"--force", "a", "b"}, []string{"a", "b"}, true},
		{[]string{"a", "--", "--force"}, []string{"a", "--force"}, false},
		{nil, nil, false},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		force := fs.Bool("force", false, "")
		pos, err := ParseInterleaved(fs, tt.args)
		if err != nil {
			t.Fatalf("ParseInterleaved(%q): %v", tt.args, err)
		}
		if !slices.Equal(pos, tt.wantPos) || *force != tt.wantForce {
			t.Errorf("ParseInterleaved(%q) = %q force=%v, want %q force=%v", tt.args, pos, *force, tt.wantPos, tt.wantForce)
		}
	}
}

func TestParseHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"x", "-h"}, {"-help", "--force"}} {
		var stdout, stderr bytes.Buffer
		fs := NewFlagSet("t", "t [--force] ARG", &stderr)
		fs.Bool("force", false, "force it")
		if _, err := Parse(fs, args, &stdout); !errors.Is(err, ErrHelp) {
			t.Fatalf("Parse(%q) = %v, want ErrHelp", args, err)
		}
		if !strings.Contains(stdout.String(), "usage: t [--force] ARG") || !strings.Contains(stdout.String(), "force it") || stderr.Len() != 0 {
			t.Errorf("Parse(%q): stdout %q, stderr %q; want the usage on stdout only", args, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	fs := NewFlagSet("t", "t", &stderr)
	if pos, err := Parse(fs, []string{"--", "--help"}, &stdout); err != nil || !slices.Equal(pos, []string{"--help"}) {
		t.Errorf("Parse(-- --help) = %q, %v; want the argument --help", pos, err)
	}
	if _, err := Parse(fs, []string{"--nope"}, &stdout); err == nil || errors.Is(err, ErrHelp) || !strings.Contains(stderr.String(), "usage: t") {
		t.Errorf("Parse(--nope) = %v, stderr %q; want an error and the usage on stderr", err, stderr.String())
	}
}
