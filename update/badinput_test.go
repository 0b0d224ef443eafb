package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/smallstep/pkcs7"

	"github.com/hardphone/hardphone/test"
	"github.com/hardphone/hardphone/update/bundle"
)

// craftVerity builds a verity bundle around image with a manifest text of
// the test's choosing, signed by signer: the way to get a validly signed
// bundle whose manifest our writer would never produce (traversal, overflow,
// hooks). manifest gets the verity keys to include and the image's sha256.
func craftVerity(t *testing.T, dir string, image []byte, signer test.CertKey, manifest func(verityKeys, sha string) string) string {
	t.Helper()
	mksquashfs := test.RequireTool(t, "mksquashfs")
	content := filepath.Join(dir, "content")
	if err := os.MkdirAll(content, 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	writeFile(t, filepath.Join(content, "rootfs.img"), image)
	writeFile(t, filepath.Join(content, "manifest.raucm"), []byte("[update]\ncompatible=x\n"))
	sq := filepath.Join(dir, "crafted.raucb")
	os.Remove(sq)
	if b, err := exec.Command(mksquashfs, content, sq, "-all-root", "-noappend", "-no-progress", "-no-xattrs").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v: %s", err, b)
	}
	data := readFile(t, sq)
	if pad := len(data) % bundle.BlockSize; pad != 0 {
		data = append(data, make([]byte, bundle.BlockSize-pad)...)
	}
	salt := randomBytes(t, 32)
	tree, root, err := bundle.BuildTree(bytes.NewReader(data), int64(len(data)), salt)
	if err != nil {
		t.Fatalf("BuildTree() error %v", err)
	}
	sum := sha256.Sum256(image)
	keys := fmt.Sprintf("verity-hash=%x\nverity-salt=%x\nverity-size=%d\n", root, salt, len(tree))
	text := manifest(keys, fmt.Sprintf("%x", sum))
	sd, err := pkcs7.NewSignedData([]byte(text))
	if err != nil {
		t.Fatalf("pkcs7: %v", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(signer.Cert, signer.Key, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatalf("pkcs7 sign: %v", err)
	}
	der, err := sd.Finish()
	if err != nil {
		t.Fatalf("pkcs7 finish: %v", err)
	}
	out := append(append(data, tree...), der...)
	out = binary.BigEndian.AppendUint64(out, uint64(len(der)))
	writeFile(t, sq, out)
	return sq
}

// stdManifest is a verity manifest for compatible with the given image
// groups.
func stdManifest(compatible, imageGroups string) func(string, string) string {
	return func(keys, _ string) string {
		return fmt.Sprintf("[update]\ncompatible=%s\nversion=6.6.6\n\n[bundle]\nformat=verity\n%s\n%s\n[meta.hardphone]\nsecurity-version=5\n",
			compatible, keys, imageGroups)
	}
}

// TestBadInputChangesNothing is the bad-input list: each bundle is
// refused with the error naming the reason, and both slots and the boot
// environment are byte for byte what they were.
func TestBadInputChangesNothing(t *testing.T) {
	pki := sharedPKI(t)
	r := newRig(t, slotSize)
	image := randomBytes(t, 2<<20)
	good := r.ownBundle(bundleSpec{version: "1", secver: 4, signer: pki.Leaf, image: image})
	raw := readFile(t, good)
	sigLen := int64(binary.BigEndian.Uint64(raw[len(raw)-8:]))
	sigOff := int64(len(raw)) - 8 - sigLen
	manifestAt := int64(bytes.Index(raw[sigOff:], []byte("compatible="))) + sigOff
	// The tree starts after the padded squashfs; the image's data sits
	// after the 96-byte superblock, so the middle of the file is image data.
	treeAt := sigOff - 4096

	variant := func(name string, edit func([]byte) []byte) string {
		p := filepath.Join(r.Dir, name+".raucb")
		writeFile(t, p, edit(append([]byte(nil), raw...)))
		return p
	}
	flip := func(off int64) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x20; return b }
	}
	dir := func() string {
		d, err := os.MkdirTemp(r.Dir, "craft-")
		if err != nil {
			t.Fatalf("mkdir: %v", err)
		}
		return d
	}
	sized := func(size string) func(string, string) string {
		return func(keys, sha string) string {
			return stdManifest(rigCompatible, fmt.Sprintf("[image.rootfs]\nfilename=rootfs.img\nsha256=%s\nsize=%s\n", sha, size))(keys, sha)
		}
	}
	small := randomBytes(t, 64<<10)
	imgPath := filepath.Join(r.Dir, "plain-rootfs.img")
	writeFile(t, imgPath, image)
	plain := test.RaucBundle(t, test.RaucBundleSpec{Format: "plain", Compatible: rigCompatible,
		Images: map[string]string{"rootfs": imgPath}, Cert: pki.Leaf.CertFile, Key: pki.Leaf.KeyFile}, filepath.Join(r.Dir, "plain.raucb"))
	plainRaw := readFile(t, plain)
	plainBad := filepath.Join(r.Dir, "plain-bad.raucb")
	plainRaw[len(plainRaw)/3] ^= 0x01
	writeFile(t, plainBad, plainRaw)

	tests := []struct {
		name string
		path string
		want error
		// manifest: also a *bundle.ManifestError naming the key.
		manifestKey string
	}{
		{"flipped payload byte", variant("payload", flip(int64(len(image))/2)), bundle.ErrCorrupt, ""},
		{"flipped verity tree byte", variant("tree", flip(treeAt+100)), bundle.ErrCorrupt, ""},
		{"flipped manifest byte", variant("manifest", flip(manifestAt+12)), bundle.ErrBadSignature, ""},
		{"flipped signature byte", variant("signature", flip(sigOff+sigLen-4)), bundle.ErrBadSignature, ""},
		{"flipped plain payload byte", plainBad, bundle.ErrCorrupt, ""},
		{"signed outside the keyring", r.ownBundle(bundleSpec{version: "1", signer: pki.ForeignLeaf, image: small}), bundle.ErrBadSignature, ""},
		{"expired signing certificate", r.ownBundle(bundleSpec{version: "1", signer: pki.Expired, image: small}), bundle.ErrBadSignature, ""},
		{"wrong purpose (S/MIME leaf)", r.ownBundle(bundleSpec{version: "1", signer: pki.SMIME, image: small}), bundle.ErrBadSignature, ""},
		{"wrong compatible", r.ownBundle(bundleSpec{compatible: "other-board", version: "1", signer: pki.Leaf, image: small}), ErrIncompatible, ""},
		{"security version below floor", r.ownBundle(bundleSpec{version: "0.9", secver: 2, signer: pki.Leaf, image: small}), ErrRollback, ""},
		{"truncated", variant("truncated", func(b []byte) []byte { return b[:len(b)-100] }), bundle.ErrCorrupt, ""},
		{"truncated to the payload", variant("truncated-payload", func(b []byte) []byte { return b[:sigOff] }), bundle.ErrCorrupt, ""},
		{"image larger than the slot", r.ownBundle(bundleSpec{version: "1", secver: 3, signer: pki.Leaf, image: randomBytes(t, slotSize+1)}), ErrTooLarge, ""},
		{"size at int64 max", craftVerity(t, dir(), small, pki.Leaf, sized("9223372036854775807")), ErrTooLarge, ""},
		{"size overflowing 64 bits", craftVerity(t, dir(), small, pki.Leaf, sized("18446744073709551616")), nil, "size"},
		{"negative size", craftVerity(t, dir(), small, pki.Leaf, sized("-1")), nil, "size"},
		{"size smaller than the image", craftVerity(t, dir(), small, pki.Leaf, sized("100")), bundle.ErrCorrupt, ""},
		{"path traversal in filename", craftVerity(t, dir(), small, pki.Leaf, func(keys, sha string) string {
			return stdManifest(rigCompatible, fmt.Sprintf("[image.rootfs]\nfilename=../slotA\nsha256=%s\nsize=%d\n", sha, len(small)))(keys, sha)
		}), nil, "filename"},
		{"absolute path in filename", craftVerity(t, dir(), small, pki.Leaf, func(keys, sha string) string {
			return stdManifest(rigCompatible, fmt.Sprintf("[image.rootfs]\nfilename=/dev/sda\nsha256=%s\nsize=%d\n", sha, len(small)))(keys, sha)
		}), nil, "filename"},
		{"verity-size overflowing", craftVerity(t, dir(), small, pki.Leaf, func(keys, sha string) string {
			return fmt.Sprintf("[update]\ncompatible=%s\n[bundle]\nformat=verity\nverity-hash=%s\nverity-salt=00\nverity-size=18446744073709551616\n", rigCompatible, sha)
		}), nil, "verity-size"},
		{"verity-size larger than the bundle", craftVerity(t, dir(), small, pki.Leaf, func(keys, sha string) string {
			return fmt.Sprintf("[update]\ncompatible=%s\n[bundle]\nformat=verity\nverity-hash=%s\nverity-salt=00\nverity-size=9223372036854771712\n[image.rootfs]\nfilename=rootfs.img\nsha256=%s\nsize=1\n", rigCompatible, sha, sha)
		}), bundle.ErrCorrupt, ""},
		{"image for a slot class the board lacks", craftVerity(t, dir(), small, pki.Leaf, func(keys, sha string) string {
			return stdManifest(rigCompatible, fmt.Sprintf("[image.rootfs]\nfilename=rootfs.img\nsha256=%s\nsize=%d\n\n[image.bootloader]\nfilename=rootfs.img\nsha256=%s\nsize=%d\n", sha, len(small), sha, len(small)))(keys, sha)
		}), ErrIncompatible, ""},
		{"install hook", craftVerity(t, dir(), small, pki.Leaf, func(keys, sha string) string {
			return stdManifest(rigCompatible, fmt.Sprintf("[hooks]\nfilename=hook.sh\n\n[image.rootfs]\nfilename=rootfs.img\nsha256=%s\nsize=%d\n", sha, len(small)))(keys, sha)
		}), bundle.ErrUnsupported, ""},
		{"not a bundle", variant("garbage", func(b []byte) []byte { return bytes.Repeat([]byte("garbage!"), 1000) }), bundle.ErrCorrupt, ""},
	}
	// The floor is raised before the snapshot: changing it is not part of
	// any refusal.
	u := r.updater()
	if err := u.floor.AdvanceTo(3); err != nil {
		t.Fatalf("AdvanceTo(3) error %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := r.snapshot()
			recsBefore, err := u.load()
			if err != nil {
				t.Fatalf("load() error %v", err)
			}
			_, err = u.Install(context.Background(), tt.path, InstallOptions{})
			if err == nil {
				t.Fatalf("Install() succeeded, want a refusal")
			}
			t.Logf("refused: %v", err)
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Install() error %v, want %v", err, tt.want)
			}
			if tt.manifestKey != "" {
				var me *bundle.ManifestError
				if !errors.As(err, &me) || me.Key != tt.manifestKey {
					t.Errorf("Install() error %v, want a manifest error on key %q", err, tt.manifestKey)
				}
			}
			if d := before.diff(r.snapshot()); d != "" {
				t.Fatalf("refused install changed %s", d)
			}
			recsAfter, err := u.load()
			if err != nil {
				t.Fatalf("load() error %v", err)
			}
			if mustJSON(t, recsAfter.last) != mustJSON(t, recsBefore.last) {
				t.Errorf("refused install changed the install record")
			}
		})
	}
	// And the good bundle still installs afterwards.
	install(t, u, good, InstallOptions{})
}

// TestImageDigestMismatch: a validly signed bundle whose image does not
// match its own manifest sha256 (a broken signing pipeline) is found at the
// end of the write. The slot was marked unbootable before writing, so the
// booted slot stays primary and intact, and the record says failed.
func TestImageDigestMismatch(t *testing.T) {
	pki := sharedPKI(t)
	r := newRig(t, slotSize)
	small := randomBytes(t, 64<<10)
	path := craftVerity(t, r.Dir, small, pki.Leaf, func(keys, sha string) string {
		wrong := []byte(sha)
		wrong[0] = map[bool]byte{true: '1', false: '0'}[wrong[0] == '0']
		return stdManifest(rigCompatible, fmt.Sprintf("[image.rootfs]\nfilename=rootfs.img\nsha256=%s\nsize=%d\n", wrong, len(small)))(keys, sha)
	})
	before := r.snapshot()
	u := r.updater()
	if _, err := u.Install(context.Background(), path, InstallOptions{}); !errors.Is(err, bundle.ErrCorrupt) {
		t.Fatalf("Install() error %v, want ErrCorrupt", err)
	}
	after := r.snapshot()
	if !bytes.Equal(before.a, after.a) {
		t.Fatalf("booted slot A changed")
	}
	v := r.vars()
	if v["BOOT_ORDER"] != "A B" || v["BOOT_A_LEFT"] != "3" || v["BOOT_B_LEFT"] != "0" {
		t.Fatalf("env = %v, want A primary and B unbootable", v)
	}
	st := status(t, u)
	if st.LastInstall.Outcome != OutcomeFailed || slotStatus(t, st, "B").State != StateBad {
		t.Errorf("status = %s", mustJSON(t, st))
	}
	if got := r.boot(); got != "A" {
		t.Errorf("bootloader booted %s, want A", got)
	}
}
