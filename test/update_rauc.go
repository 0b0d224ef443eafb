package test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// RaucBundleSpec describes a bundle for `rauc bundle` to make.
type RaucBundleSpec struct {
	Format     string            // "verity" or "plain"
	Compatible string            // [update] compatible
	Version    string            // [update] version; may be empty
	Images     map[string]string // slot class -> image file to include
	Cert, Key  string            // signer PEM files
	// Extra is appended to the manifest verbatim (for [meta.*] groups,
	// which rauc 1.8 drops, or deliberately wrong input).
	Extra string
}

// RaucBundle makes a bundle with Debian's rauc tool (`rauc bundle --cert
// --key DIR OUT`) and returns out. It skips (fails under CI=true) when rauc
// or mksquashfs is missing.
func RaucBundle(t testing.TB, spec RaucBundleSpec, out string) string {
	t.Helper()
	rauc := requireBinary(t, "rauc")
	requireBinary(t, "mksquashfs")
	dir, err := os.MkdirTemp(filepath.Dir(out), "rauc-content-")
	if err != nil {
		t.Fatalf("RaucBundle: %v", err)
	}
	defer os.RemoveAll(dir)
	var m strings.Builder
	fmt.Fprintf(&m, "[update]\ncompatible=%s\n", spec.Compatible)
	if spec.Version != "" {
		fmt.Fprintf(&m, "version=%s\n", spec.Version)
	}
	fmt.Fprintf(&m, "\n[bundle]\nformat=%s\n", spec.Format)
	classes := make([]string, 0, len(spec.Images))
	for c := range spec.Images {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		name := filepath.Base(spec.Images[c])
		if err := copyFile(spec.Images[c], filepath.Join(dir, name)); err != nil {
			t.Fatalf("RaucBundle: %v", err)
		}
		fmt.Fprintf(&m, "\n[image.%s]\nfilename=%s\n", c, name)
	}
	m.WriteString(spec.Extra)
	if err := os.WriteFile(filepath.Join(dir, "manifest.raucm"), []byte(m.String()), 0o644); err != nil {
		t.Fatalf("RaucBundle: %v", err)
	}
	os.Remove(out)
	cmd := exec.Command(rauc, "bundle", "--cert", spec.Cert, "--key", spec.Key, dir, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rauc bundle: %v\n%s", err, b)
	}
	return out
}

// RaucConf writes a minimal system.conf for `rauc -c FILE info|extract`,
// with the keyring and check-purpose ("" for rauc's default), and returns
// its path.
func RaucConf(t testing.TB, dir, compatible, keyring, checkPurpose string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[system]\ncompatible=%s\nbootloader=noop\n\n[keyring]\npath=%s\n", compatible, keyring)
	if checkPurpose != "" {
		fmt.Fprintf(&b, "check-purpose=%s\n", checkPurpose)
	}
	b.WriteString("\n[slot.rootfs.0]\ndevice=/dev/null\n")
	path := filepath.Join(dir, "system.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatalf("RaucConf: %v", err)
	}
	return path
}

// Rauc runs the rauc tool and returns its combined output and error.
func Rauc(t testing.TB, args ...string) (string, error) {
	t.Helper()
	rauc := requireBinary(t, "rauc")
	b, err := exec.Command(rauc, args...).CombinedOutput()
	return string(b), err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
