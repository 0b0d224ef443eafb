package cli

import (
	"flag"
	"io"
	"slices"
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
