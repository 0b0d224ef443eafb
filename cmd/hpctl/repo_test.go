package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/hardphone/hardphone/test"
)

// verifyRepo runs a public tree through go-tuf's client checks from root
// v1 and returns the trusted set.
func verifyRepo(t *testing.T, public string) *trustedmetadata.TrustedMetadata {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(public, name))
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		return b
	}
	tm, err := trustedmetadata.New(read("1.root.json"))
	if err != nil {
		t.Fatalf("root v1: %v", err)
	}
	for v := 2; ; v++ {
		name := filepath.Join(public, strconv.Itoa(v)+".root.json")
		b, err := os.ReadFile(name)
		if err != nil {
			break
		}
		if _, err := tm.UpdateRoot(b); err != nil {
			t.Fatalf("root v%d: %v", v, err)
		}
	}
	tm.RefTime = time.Now()
	ts, err := tm.UpdateTimestamp(read("timestamp.json"))
	if err != nil {
		t.Fatalf("timestamp: %v", err)
	}
	sv := ts.Signed.Meta["snapshot.json"].Version
	snap, err := tm.UpdateSnapshot(read(strconv.FormatInt(sv, 10)+".snapshot.json"), false)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if _, err := tm.UpdateTargets(read(strconv.FormatInt(snap.Signed.Meta["targets.json"].Version, 10) + ".targets.json")); err != nil {
		t.Fatalf("targets: %v", err)
	}
	return tm
}

func mustHpctl(t *testing.T, args ...string) string {
	t.Helper()
	so, se, code := hpctl(t, args...)
	if code != 0 {
		t.Fatalf("hpctl %s: exit %d\n%s%s", strings.Join(args, " "), code, so, se)
	}
	return so
}

// TestRepoCommands walks the vendor's workflow with the command line:
// keys, a 2-of-2 root and targets signed one holder at a time, a bundle
// added, a timestamp refresh, a root rotation signed by old and new keys,
// and the refusal of a key file others can read. Every published state
// passes go-tuf's client checks.
func TestRepoCommands(t *testing.T) {
	dir := t.TempDir()
	k := func(name string) string { return filepath.Join(dir, "keys", name) }
	os.Mkdir(filepath.Join(dir, "keys"), 0o700)
	for _, name := range []string{"root1", "root2", "targets1", "targets2", "snapshot", "timestamp", "root3", "root4"} {
		typ := "ecdsa-p256"
		if strings.HasPrefix(name, "targets") {
			typ = "ed25519"
		}
		out := mustHpctl(t, "repo", "keygen", k(name), "--type", typ)
		if !strings.Contains(out, "key ID") {
			t.Fatalf("keygen said %q", out)
		}
	}
	repo := filepath.Join(dir, "image")
	// Root key 2 is offline: only its public half is named here.
	out := mustHpctl(t, "repo", "init", repo, "--root-keys", k("root1")+","+k("root2")+".pub", "--root-threshold", "2",
		"--targets-key", k("targets1"), "--targets-key", k("targets2")+".pub", "--targets-threshold", "2",
		"--snapshot-key", k("snapshot"), "--timestamp-key", k("timestamp"), "--expires", "timestamp=2d")
	if !strings.Contains(out, "staged, not published") || !strings.Contains(out, "root has 1 valid signature") {
		t.Fatalf("init said %q, want root pending", out)
	}
	mustHpctl(t, "repo", "sign", repo, "--role", "root", "--key", k("root2"))
	out = mustHpctl(t, "repo", "sign", repo, "--role", "targets", "--key", k("targets2"), "--snapshot-key", k("snapshot"), "--timestamp-key", k("timestamp"))
	if !strings.Contains(out, "published root v1, targets v1, snapshot v1, timestamp v1") {
		t.Fatalf("sign said %q, want everything published", out)
	}
	verifyRepo(t, filepath.Join(repo, "public"))

	// A bundle, signed by one targets key, then the second.
	pki := test.NewUpdatePKI(t, filepath.Join(dir, "pki"))
	img := filepath.Join(dir, "rootfs.ext4")
	writeRandom(t, img, 1<<20)
	bundlePath := filepath.Join(dir, "hardphone-2026.1.raucb")
	mustHpctl(t, "bundle", "create", "--cert", pki.Leaf.CertFile, "--key", pki.Leaf.KeyFile,
		"--compatible", "hardphone-qemu-arm64", "--version", "2026.1", "--security-version", "4", img, "-o", bundlePath)
	out = mustHpctl(t, "repo", "add", repo, bundlePath, "--keyring", pki.CA.CertFile, "--key", k("targets1"),
		"--snapshot-key", k("snapshot"), "--timestamp-key", k("timestamp"))
	if !strings.Contains(out, `security version 4`) || !strings.Contains(out, "targets has 1 valid signature") {
		t.Fatalf("add said %q", out)
	}
	out = mustHpctl(t, "repo", "sign", repo, "--role", "targets", "--key", k("targets2"), "--snapshot-key", k("snapshot"), "--timestamp-key", k("timestamp"))
	if !strings.Contains(out, "published targets v2, snapshot v2, timestamp v2") {
		t.Fatalf("sign said %q", out)
	}
	tm := verifyRepo(t, filepath.Join(repo, "public"))
	tf, ok := tm.Targets["targets"].Signed.Targets["hardphone-2026.1.raucb"]
	if !ok || tf.Custom == nil || !strings.Contains(string(*tf.Custom), `"security_version":4`) || !strings.Contains(string(*tf.Custom), `"compatible":"hardphone-qemu-arm64"`) {
		t.Fatalf("published target = %+v", tf)
	}
	info := mustHpctl(t, "repo", "info", repo)
	if !strings.Contains(info, "hardphone-2026.1.raucb") || !strings.Contains(info, "2 of 2") {
		t.Fatalf("info said %q", info)
	}
	if out := mustHpctl(t, "repo", "timestamp", repo, "--key", k("timestamp")); !strings.Contains(out, "timestamp v3") {
		t.Fatalf("timestamp said %q", out)
	}

	// A key file others can read is refused, and nothing changes.
	os.Chmod(k("targets1"), 0o644)
	so, se, code := hpctl(t, "repo", "sign", repo, "--role", "targets", "--renew", "--key", k("targets1"))
	if code == 0 || !strings.Contains(se, "want 0600") {
		t.Fatalf("sign with a 0644 key: exit %d\n%s%s", code, so, se)
	}
	os.Chmod(k("targets1"), 0o600)

	// Rotation to root keys 3 and 4: with only the new keys it waits for
	// the old ones.
	out = mustHpctl(t, "repo", "rotate-root", repo, "--new-keys", k("root3")+","+k("root4"), "--threshold", "2")
	if !strings.Contains(out, "root has 0 valid signature(s) under root v1") {
		t.Fatalf("rotate-root said %q", out)
	}
	out = mustHpctl(t, "repo", "sign", repo, "--role", "root", "--key", k("root1")+","+k("root2"))
	if !strings.Contains(out, "published root v2") {
		t.Fatalf("sign said %q", out)
	}
	tm = verifyRepo(t, filepath.Join(repo, "public"))
	if tm.Root.Signed.Version != 2 || tm.Root.Signed.Roles["root"].Threshold != 2 {
		t.Fatalf("root after rotation: v%d threshold %d", tm.Root.Signed.Version, tm.Root.Signed.Roles["root"].Threshold)
	}
	if so, se, code := hpctl(t, "repo", "publish", repo, "--snapshot-key", k("snapshot"), "--timestamp-key", k("timestamp")); code != 1 || !strings.Contains(se, "nothing staged") {
		t.Fatalf("publish with nothing staged: exit %d\n%s%s", code, so, se)
	}
}
