package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/test"
)

func qemuBoard(t *testing.T) *board.Board {
	t.Helper()
	b, err := board.Lookup("qemu-arm64")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBootScript: the bootchooser reads and writes the board's env copies
// where the board says, and mkimage accepts it.
func TestBootScript(t *testing.T) {
	b := qemuBoard(t)
	text, err := bootScriptText(b)
	if err != nil {
		t.Fatalf("bootScriptText: %v", err)
	}
	s := string(text)
	for _, want := range []string{
		"part start virtio 0 5 hp_envblk",
		"setexpr hp_blk1 ${hp_envblk} + 0x20", // redundant copy at 0x4000 = 32 blocks
		"virtio read 0x4f000000 ${hp_blk0} 0x20",
		"setexpr.b hp_f0 *0x4f000004",
		"env import -c 0x4f000001 0x3fff hp_none",
		"env export -c -s 0x3fff 0x4f100001 BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT",
		"mw.b 0x4f100004 ${hp_fl}",
		"setenv hp_slot A; setenv hp_part 2",
		"setenv hp_slot B; setenv hp_part 3",
		`setenv bootargs "console=ttyAMA0 panic=-1 quiet rauc.slot=${hp_slot}"`,
		"load virtio 0:${hp_part} ${kernel_addr_r} boot/Image || reset",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("boot script lacks %q:\n%s", want, s)
		}
	}
	mkimage := test.RequireTool(t, "mkimage")
	dir := t.TempDir()
	cmd := filepath.Join(dir, "boot.cmd")
	if err := os.WriteFile(cmd, text, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkimage, "-A", "arm64", "-T", "script", "-C", "none", "-d", cmd, filepath.Join(dir, "boot.scr")).CombinedOutput(); err != nil {
		t.Fatalf("mkimage: %v\n%s", err, out)
	}
}

// TestCpio: the initramfs writer's archive lists the same entries under
// GNU cpio, and reads back byte for byte.
func TestCpio(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "big")
	big := bytes.Repeat([]byte("hardphone"), 300001)
	if err := os.WriteFile(src, big, 0o644); err != nil {
		t.Fatal(err)
	}
	es := []entry{
		{name: "dev", mode: sIFDIR | 0o755},
		{name: "dev/console", mode: sIFCHR | 0o600, major: 5, minor: 1},
		{name: "etc", mode: sIFDIR | 0o755},
		{name: "etc/odd", mode: sIFREG | 0o644, data: []byte("abc")},
		{name: "init", mode: sIFREG | 0o755, src: src},
	}
	out := filepath.Join(dir, "initrd")
	if err := writeCpio(out, es); err != nil {
		t.Fatalf("writeCpio: %v", err)
	}
	cpio := test.RequireTool(t, "cpio")
	list, err := exec.Command(cpio, "-t", "--quiet", "-F", out).Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	var want []string
	for _, e := range es {
		want = append(want, e.name)
	}
	if got := strings.Fields(string(list)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("cpio -t = %v, want %v", got, want)
	}
	ext := filepath.Join(dir, "x")
	if err := os.Mkdir(ext, 0o755); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(cpio, "-i", "--quiet", "-d", "--no-absolute-filenames", "-F", out, "init", "etc/odd")
	c.Dir = ext
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, b)
	}
	if got, _ := os.ReadFile(filepath.Join(ext, "init")); !bytes.Equal(got, big) {
		t.Errorf("init read back %d bytes, want the %d written", len(got), len(big))
	}
	if got, _ := os.ReadFile(filepath.Join(ext, "etc/odd")); string(got) != "abc" {
		t.Errorf("etc/odd = %q, want abc", got)
	}
	if st, err := os.Stat(filepath.Join(ext, "init")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("init mode = %v (%v), want 0755", st.Mode(), err)
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/block/virtio_blk.ko":         "virtio_blk",
		"kernel/drivers/char/tpm/tpm_tis-core.ko.xz": "tpm_tis_core",
		"softdog.ko.zst":                             "softdog",
	} {
		if got := moduleName(in); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResolveModules(t *testing.T) {
	dir := t.TempDir()
	k := &kernel{version: "6.1.0-test", modDir: dir}
	dep := "kernel/virtio.ko:\nkernel/virtio_ring.ko:\nkernel/virtio_blk.ko: kernel/virtio.ko kernel/virtio_ring.ko\nkernel/softdog.ko.xz: kernel/watchdog.ko.xz\nkernel/watchdog.ko.xz:\n"
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/fs/ext4/ext4.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mods := func(names ...string) []board.Module {
		var out []board.Module
		for _, n := range names {
			out = append(out, board.Module{Name: n})
		}
		return out
	}
	got, err := k.resolveModules(mods("virtio_ring", "virtio", "virtio_blk", "watchdog", "softdog"))
	if err != nil {
		t.Fatalf("resolveModules(good order) = %v", err)
	}
	if got[2].file != "virtio_blk.ko" || got[4].file != "softdog.ko.xz" || got[4].path != filepath.Join(dir, "kernel/softdog.ko.xz") {
		t.Errorf("resolveModules = %+v, want virtio_blk.ko and softdog.ko.xz from the package", got)
	}
	for _, tt := range []struct {
		names []string
		want  string
	}{
		{[]string{"virtio_blk"}, "needs virtio"},
		{[]string{"ext4"}, "built in"},
		{[]string{"nosuch"}, "has no module"},
	} {
		if _, err := k.resolveModules(mods(tt.names...)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("resolveModules(%v) = %v, want an error about %q", tt.names, err, tt.want)
		}
	}
}

// TestDevPKI: the development PKI has a codeSigning signer under the
// keyring and a registrar certificate for QEMU's forwarded address, and a
// second build reuses it.
func TestDevPKI(t *testing.T) {
	o := &imageOptions{out: t.TempDir()}
	if err := o.defaultPKI(); err != nil {
		t.Fatalf("defaultPKI: %v", err)
	}
	first, err := os.ReadFile(o.signerCert)
	if err != nil {
		t.Fatal(err)
	}
	signer := parseCert(t, o.signerCert)
	if len(signer.ExtKeyUsage) != 1 || signer.ExtKeyUsage[0] != x509.ExtKeyUsageCodeSigning || signer.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("signer EKU %v KU %v, want codeSigning and digitalSignature", signer.ExtKeyUsage, signer.KeyUsage)
	}
	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, o.keyring))
	if _, err := signer.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
		t.Errorf("signer does not verify under the keyring: %v", err)
	}
	reg := parseCert(t, filepath.Join(o.out, "pki", "registrar.pem"))
	if err := reg.VerifyHostname("10.0.2.100"); err != nil {
		t.Errorf("registrar certificate: %v", err)
	}
	o2 := &imageOptions{out: o.out}
	if err := o2.defaultPKI(); err != nil {
		t.Fatalf("defaultPKI again: %v", err)
	}
	if again, _ := os.ReadFile(o2.signerCert); !bytes.Equal(again, first) {
		t.Errorf("a second build made a new signer; bundles would not verify against an older image's keyring")
	}
	if err := (&imageOptions{out: t.TempDir(), keyring: o.keyring}).defaultPKI(); err == nil {
		t.Errorf("defaultPKI(keyring without signer) = nil, want a usage error")
	}
}

func parseCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: not PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// TestImageUsage: the CLI refuses what it cannot build.
func TestImageUsage(t *testing.T) {
	for _, args := range [][]string{
		{"image"},
		{"image", "build"},
		{"image", "build", "--board", "qemu-arm64", "-o", "x"},
		{"image", "build", "--board", "desktop", "--hardphone", "x", "-o", "x"},
		{"image", "build", "--board", "nokia-3310", "--hardphone", "x", "-o", "x"},
		{"image", "build", "--board", "qemu-arm64", "--hardphone", "x", "-o", "x", "--security-version", "-1"},
		// The repositories' pins go together, and only with a fleet.
		{"image", "build", "--board", "qemu-arm64", "--hardphone", "x", "-o", "x", "--image-root", "r.json", "--director-root", "d.json",
			"--image-repo", "http://10.0.2.102/image/"},
		{"image", "build", "--board", "qemu-arm64", "--hardphone", "x", "-o", "x", "--fleet", "https://f:8443", "--fleet-ca", "a",
			"--fleet-device-ca", "b", "--image-root", "r.json", "--image-repo", "http://10.0.2.102/image/"},
		{"image", "kernel", "--board", "qemu-arm64", "--package", "linux-image-../x"},
		{"image", "kernel", "--board", "qemu-arm64", "--package", "linux-headers-arm64"},
	} {
		if _, se, code := hpctl(t, args...); code != 2 {
			t.Errorf("hpctl %s: exit %d, want 2 (usage)\n%s", strings.Join(args, " "), code, se)
		}
	}
}

// TestImageOfflineNoKernel: an offline build or kernel check on an empty
// cache (what the QEMU tests do inside their namespace when make kernel did
// not run) fails with words a user can act on, and runs no apt.
func TestImageOfflineNoKernel(t *testing.T) {
	cache := t.TempDir()
	for _, args := range [][]string{
		{"image", "kernel", "--board", "qemu-arm64", "--offline", "--cache", cache},
		{"image", "kernel", "--board", "qemu-arm64", "--package", "linux-image-arm64", "--offline", "--cache", cache},
		{"image", "build", "--board", "qemu-arm64", "--hardphone", "x", "-o", t.TempDir(), "--offline", "--cache", cache},
	} {
		_, se, code := hpctl(t, args...)
		if code != 1 || !strings.Contains(se, "run `make kernel` (or `make image`) first") ||
			!strings.Contains(se, "outside the test's network namespace") {
			t.Errorf("hpctl %s: exit %d, stderr %q; want 1 and what to run", strings.Join(args, " "), code, se)
		}
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("offline check wrote %d entries into the cache, want none", len(entries))
	}
}

// TestKernelPackage: a kernel package named on the command line becomes a
// file name in the cache, so only Debian package names of kernels pass.
func TestKernelPackage(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"linux-image-arm64", true},
		{"linux-image-cloud-arm64", true},
		{"linux-image-6.1.0-57-arm64", true},
		{"linux-image-rt-arm64+dbg", true},
		{"", false},
		{"linux-headers-arm64", false},
		{"linux-image-../../etc", false},
		{"linux-image-ARM64", false},
		{"linux-image-arm64 x", false},
		{"linux-image-" + strings.Repeat("a", 60), false},
	}
	for _, tt := range tests {
		if err := kernelPackage(tt.name); (err == nil) != tt.ok {
			t.Errorf("kernelPackage(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestCurrentName: the board's own kernel keeps the name existing caches
// hold; another package gets its own record beside it.
func TestCurrentName(t *testing.T) {
	k := &board.Kernel{Package: "linux-image-cloud-arm64", DebArch: "arm64"}
	for _, tt := range []struct{ pkg, want string }{
		{"linux-image-cloud-arm64", "current"},
		{"linux-image-arm64", "current-linux-image-arm64"},
	} {
		if got := currentName(k, tt.pkg); got != tt.want {
			t.Errorf("currentName(%q) = %q, want %q", tt.pkg, got, tt.want)
		}
	}
}

// TestImageConfigPinsRepositories: with the fleet's repositories given,
// the generated config names the roots where the image ships them and
// the image repository's URL, and the agent accepts it.
func TestImageConfigPinsRepositories(t *testing.T) {
	o := imageOptions{board: qemuBoard(t), user: "alice", fleet: "https://10.0.2.101:8443", fleetName: "fleet.test",
		fleetCA: "ca.pem", fleetDeviceCA: "dev.pem", imageRoot: "r.json", directorRoot: "d.json", imageRepo: "http://10.0.2.102/image/public/"}
	b, err := o.agentConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(b, "/")
	if err != nil {
		t.Fatalf("config.Parse(generated) = %v\n%s", err, b)
	}
	p := cfg.Provision
	if p.ImageRoot != imageRootPath || p.DirectorRoot != directorRootPath || p.ImageRepo != o.imageRepo ||
		p.Director != "https://10.0.2.101:8443/director/" {
		t.Fatalf("generated [provision] = %+v, want the pinned roots at %s and %s, image repo %s, director on the fleet server\n%s",
			p, imageRootPath, directorRootPath, o.imageRepo, b)
	}
	o.imageRoot, o.directorRoot, o.imageRepo = "", "", ""
	if b, err = o.agentConfig(); err != nil || bytes.Contains(b, []byte("image_root")) {
		t.Fatalf("without the repositories: %v\n%s", err, b)
	}
}

// TestImageRootPins: a pinned root must be TUF root metadata signed by its
// own root keys; anything else (another role's metadata, a root whose
// signature was cut) is refused before anything is built, and a real root
// passes on to the build (which then stops at the empty kernel cache).
func TestImageRootPins(t *testing.T) {
	dir := t.TempDir()
	keys := map[string]string{}
	for _, k := range []string{"root", "targets", "snapshot", "timestamp"} {
		keys[k] = filepath.Join(dir, k+".pem")
		if _, se, code := hpctl(t, "repo", "keygen", keys[k]); code != 0 {
			t.Fatalf("repo keygen: %d %s", code, se)
		}
	}
	repo := filepath.Join(dir, "repo")
	if _, se, code := hpctl(t, "repo", "init", repo, "--root-keys", keys["root"], "--targets-key", keys["targets"],
		"--snapshot-key", keys["snapshot"], "--timestamp-key", keys["timestamp"]); code != 0 {
		t.Fatalf("repo init: %d %s", code, se)
	}
	root := filepath.Join(repo, "public", "1.root.json")
	b, err := os.ReadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := filepath.Join(dir, "unsigned.json")
	i := bytes.Index(b, []byte(`"signatures"`))
	j := bytes.Index(b, []byte(`"signed"`))
	if i < 0 || j < 0 || i > j {
		t.Fatalf("root.json layout unexpected:\n%s", b)
	}
	if err := os.WriteFile(unsigned, append(append([]byte("{"), `"signatures":[],`...), b[j:]...), 0o644); err != nil {
		t.Fatal(err)
	}
	build := func(imageRoot string) (string, int) {
		_, se, code := hpctl(t, "image", "build", "--board", "qemu-arm64", "--hardphone", "x", "-o", filepath.Join(dir, "out"),
			"--offline", "--cache", filepath.Join(dir, "cache"), "--fleet", "https://10.0.2.101:8443", "--fleet-ca", "a.pem",
			"--fleet-device-ca", "b.pem", "--image-root", imageRoot, "--director-root", root, "--image-repo", "http://10.0.2.102/image/public/")
		return se, code
	}
	for _, c := range []struct{ path, want string }{
		{filepath.Join(repo, "public", "timestamp.json"), "not TUF root metadata"},
		{unsigned, "not signed by its own root keys"},
		{filepath.Join(dir, "absent.json"), "no such file"},
	} {
		if se, code := build(c.path); code != 1 || !strings.Contains(se, c.want) {
			t.Errorf("image build --image-root %s: exit %d, stderr %q; want 1 and %q", filepath.Base(c.path), code, se, c.want)
		}
	}
	if se, code := build(root); code != 1 || !strings.Contains(se, "make kernel") {
		t.Errorf("image build with a real root: exit %d, stderr %q; want it past the pins, stopped by the empty kernel cache", code, se)
	}
}
