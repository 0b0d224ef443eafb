package test

import (
	"bytes"
	"os/exec"
	"testing"
)

// RunFFmpeg runs Debian's ffmpeg once with args, after -hide_banner and
// -nostdin when stdin is nil, feeding it stdin and returning what it wrote to
// standard output and standard error. It skips the test when ffmpeg is not
// installed (fails it under CI=true) and fails the test when ffmpeg exits
// non-zero, quoting its standard error. ffmpeg only reads and writes the
// files and pipes args name; it opens no network connection unless args ask
// for one.
func RunFFmpeg(t testing.TB, stdin []byte, args ...string) (stdout, stderr []byte) {
	t.Helper()
	bin := requireBinary(t, "ffmpeg")
	full := []string{"-hide_banner"}
	if stdin == nil {
		full = append(full, "-nostdin")
	}
	cmd := exec.Command(bin, append(full, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg %q: %v\n%s", args, err, errb.Bytes())
	}
	return out.Bytes(), errb.Bytes()
}
