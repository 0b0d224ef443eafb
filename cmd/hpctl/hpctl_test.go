package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/test"
)

func hpctl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

func writeRandom(t *testing.T, path string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("rand: %v", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatalf("write: %v", err)
	}
	return b
}

// TestCreateInfoVerifyRauc is the interop check for our writer:
// hpctl bundle create output passes `rauc info --keyring` and `rauc extract
// --keyring`, what rauc extracts is byte-identical to the input image, and
// hpctl's own info and verify agree.
func TestCreateInfoVerifyRauc(t *testing.T) {
	dir := t.TempDir()
	pki := test.NewUpdatePKI(t, filepath.Join(dir, "pki"))
	img := filepath.Join(dir, "rootfs.ext4")
	want := writeRandom(t, img, 6<<20+4095)
	out := filepath.Join(dir, "update.raucb")
	so, se, code := hpctl(t, "bundle", "create", "--cert", pki.Leaf.CertFile, "--key", pki.Leaf.KeyFile,
		"--compatible", "hardphone-qemu-arm64", "--version", "2026.12.1", "--security-version", "12", img, "-o", out)
	if code != 0 {
		t.Fatalf("hpctl bundle create: exit %d\n%s%s", code, so, se)
	}

	conf := test.RaucConf(t, dir, "hardphone-qemu-arm64", pki.CA.CertFile, "codesign")
	info, err := test.Rauc(t, "-c", conf, "info", "--keyring", pki.CA.CertFile, out)
	if err != nil {
		t.Fatalf("rauc info: %v\n%s", err, info)
	}
	for _, s := range []string{"'hardphone-qemu-arm64'", "'2026.12.1'", "verity", "rootfs.ext4"} {
		if !strings.Contains(info, s) {
			t.Errorf("rauc info lacks %s:\n%s", s, info)
		}
	}
	ext := filepath.Join(dir, "extract")
	if o, err := test.Rauc(t, "-c", conf, "extract", "--keyring", pki.CA.CertFile, out, ext); err != nil {
		t.Fatalf("rauc extract: %v\n%s", err, o)
	}
	got, err := os.ReadFile(filepath.Join(ext, "rootfs.ext4"))
	if err != nil {
		t.Fatalf("read extracted image: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("rauc extract: %d bytes not identical to the %d-byte input", len(got), len(want))
	}

	so, se, code = hpctl(t, "bundle", "verify", "--keyring", pki.CA.CertFile, "--json", out)
	if code != 0 {
		t.Fatalf("hpctl bundle verify: exit %d\n%s%s", code, so, se)
	}
	var rep bundleReport
	if err := json.Unmarshal([]byte(so), &rep); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, so)
	}
	if !rep.PayloadChecked || rep.SecurityVersion != 12 || rep.Format != "verity" || len(rep.Images) != 1 || !rep.Images[0].Checked {
		t.Errorf("verify report = %+v", rep)
	}
	so, _, code = hpctl(t, "bundle", "info", "--keyring", pki.CA.CertFile, out)
	if code != 0 || !strings.Contains(so, "Security version: 12") || strings.Contains(so, "Payload:") {
		t.Errorf("hpctl bundle info: exit %d\n%s", code, so)
	}
}

func TestVerifyRefuses(t *testing.T) {
	dir := t.TempDir()
	pki := test.NewUpdatePKI(t, filepath.Join(dir, "pki"))
	img := filepath.Join(dir, "rootfs.img")
	writeRandom(t, img, 1<<20)
	out := filepath.Join(dir, "b.raucb")
	if _, se, code := hpctl(t, "bundle", "create", "--cert", pki.Leaf.CertFile, "--key", pki.Leaf.KeyFile,
		"--compatible", "c", "--version", "1", img, "-o", out); code != 0 {
		t.Fatalf("create: exit %d: %s", code, se)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	raw[len(raw)/2] ^= 1
	bad := filepath.Join(dir, "bad.raucb")
	if err := os.WriteFile(bad, raw, 0o644); err != nil {
		t.Fatalf("write: %v", err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"flipped payload byte", []string{"bundle", "verify", "--keyring", pki.CA.CertFile, bad}, 1, "does not match the verity tree"},
		{"info does not read the payload", []string{"bundle", "info", "--keyring", pki.CA.CertFile, bad}, 0, ""},
		{"foreign keyring", []string{"bundle", "verify", "--keyring", pki.ForeignCA.CertFile, out}, 1, "not issued by a keyring certificate"},
		{"rauc default purpose", []string{"bundle", "info", "--keyring", pki.CA.CertFile, "--check-purpose", "smimesign", out}, 1, "emailProtection"},
		{"missing keyring", []string{"bundle", "verify", out}, 2, "--keyring is required"},
		{"create without compatible", []string{"bundle", "create", "--cert", pki.Leaf.CertFile, "--key", pki.Leaf.KeyFile, "--version", "1", img, "-o", out}, 2, "--compatible"},
		{"create with bad security version", []string{"bundle", "create", "--cert", pki.Leaf.CertFile, "--key", pki.Leaf.KeyFile, "--compatible", "c", "--version", "1", "--security-version", "-3", img, "-o", out}, 2, "security-version"},
		{"unknown subcommand", []string{"bundle", "sign"}, 2, "unknown subcommand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			so, se, code := hpctl(t, tt.args...)
			if code != tt.code || !strings.Contains(se, tt.want) {
				t.Errorf("hpctl %v: exit %d, stderr %q, want exit %d and %q (stdout %q)", tt.args, code, se, tt.code, tt.want, so)
			}
		})
	}
}

// TestVerifyRaucPlain: hpctl reads bundles from existing rauc pipelines,
// including plain ones.
func TestVerifyRaucPlain(t *testing.T) {
	dir := t.TempDir()
	pki := test.NewUpdatePKI(t, filepath.Join(dir, "pki"))
	img := filepath.Join(dir, "rootfs.img")
	writeRandom(t, img, 1<<20)
	path := test.RaucBundle(t, test.RaucBundleSpec{Format: "plain", Compatible: "c", Version: "1",
		Images: map[string]string{"rootfs": img}, Cert: pki.Leaf.CertFile, Key: pki.Leaf.KeyFile}, filepath.Join(dir, "p.raucb"))
	so, se, code := hpctl(t, "bundle", "verify", "--keyring", pki.CA.CertFile, path)
	if code != 0 || !strings.Contains(so, "Format:           plain") || !strings.Contains(so, "Payload:          verified") {
		t.Errorf("hpctl bundle verify (rauc plain): exit %d\n%s%s", code, so, se)
	}
}
