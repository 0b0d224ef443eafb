package bundle

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
)

func TestOwnVerityRoundTrip(t *testing.T) {
	pki := testPKI(t)
	dir := t.TempDir()
	img := randomImage(t, dir, "rootfs.img", 3<<20+123)
	path := ownBundle(t, dir, signerOf(pki.Leaf), img, 7)
	got, b := readImage(t, path, keyringOf(t, pki.CA))
	want, err := os.ReadFile(img)
	if err != nil {
		t.Fatalf("read image: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("image read back differs from the input")
	}
	m := b.Manifest
	if m.SecurityVersion != 7 || !m.HasSecurityVersion || b.Format() != FormatVerity || m.Compatible != testCompatible || m.Version != "1.0.0" {
		t.Errorf("manifest = %+v", m)
	}
	if b.Signature.Signer.Subject.CommonName != pki.Leaf.Cert.Subject.CommonName || len(b.Signature.Chain) != 2 {
		t.Errorf("signature = signer %v chain %d, want the leaf and a chain of 2", b.Signature.Signer.Subject, len(b.Signature.Chain))
	}
}

// TestRaucMadeBundles opens bundles made by Debian's rauc 1.8, both
// formats, and reads back the exact image.
func TestRaucMadeBundles(t *testing.T) {
	pki := testPKI(t)
	for _, format := range []string{"verity", "plain"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			img := randomImage(t, dir, "rootfs.img", 2<<20+77)
			path := test.RaucBundle(t, test.RaucBundleSpec{Format: format, Compatible: testCompatible, Version: "2.0",
				Images: map[string]string{"rootfs": img}, Cert: pki.Leaf.CertFile, Key: pki.Leaf.KeyFile},
				filepath.Join(dir, "rauc.raucb"))
			got, b := readImage(t, path, keyringOf(t, pki.CA), WithWorkDir(dir))
			want, err := os.ReadFile(img)
			if err != nil {
				t.Fatalf("read image: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("image from a rauc %s bundle differs from the input", format)
			}
			if b.Format().String() != format || b.Manifest.Version != "2.0" || b.Manifest.SecurityVersion != 0 {
				t.Errorf("manifest = %+v, format %s", b.Manifest, b.Format())
			}
		})
	}
}

// TestTreeMatchesRauc recomputes the verity tree of a rauc-made bundle with
// the salt from its manifest: tree bytes and root must be identical.
func TestTreeMatchesRauc(t *testing.T) {
	pki := testPKI(t)
	dir := t.TempDir()
	img := randomImage(t, dir, "rootfs.img", 600<<10)
	path := test.RaucBundle(t, test.RaucBundleSpec{Format: "verity", Compatible: testCompatible,
		Images: map[string]string{"rootfs": img}, Cert: pki.Leaf.CertFile, Key: pki.Leaf.KeyFile},
		filepath.Join(dir, "rauc.raucb"))
	b, err := OpenFile(path, keyringOf(t, pki.CA))
	if err != nil {
		t.Fatalf("OpenFile() error %v", err)
	}
	defer b.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	v := b.Manifest.Verity
	tree, root, err := BuildTree(bytes.NewReader(raw[:b.PayloadSize]), b.PayloadSize, v.Salt)
	if err != nil {
		t.Fatalf("BuildTree() error %v", err)
	}
	if root != v.Hash {
		t.Errorf("BuildTree() root %x, rauc's verity-hash %x", root, v.Hash)
	}
	if !bytes.Equal(tree, raw[b.PayloadSize:b.PayloadSize+v.Size]) {
		t.Errorf("BuildTree() tree differs from rauc's")
	}
}

func TestTreeSize(t *testing.T) {
	tests := []struct {
		blocks int64
		want   int64 // hash blocks
	}{
		{2, 1}, {128, 1}, {129, 2 + 1}, {16384, 128 + 1}, {4097, 33 + 1}, {16385, 129 + 2 + 1},
	}
	for _, tt := range tests {
		got, err := TreeSize(tt.blocks * BlockSize)
		if err != nil || got != tt.want*BlockSize {
			t.Errorf("TreeSize(%d blocks) = %d, %v, want %d", tt.blocks, got, err, tt.want*BlockSize)
		}
	}
	for _, bad := range []int64{0, BlockSize, BlockSize + 1, -BlockSize} {
		if _, err := TreeSize(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("TreeSize(%d) error %v, want ErrCorrupt", bad, err)
		}
	}
}

// TestRaucAcceptsOurs: rauc info checks our signature, rauc extract our
// payload and tree; what rauc extracts is byte-identical to the input.
func TestRaucAcceptsOurs(t *testing.T) {
	pki := testPKI(t)
	dir := t.TempDir()
	img := randomImage(t, dir, "rootfs.img", 5<<20+1)
	path := ownBundle(t, dir, signerOf(pki.Leaf), img, 3)
	conf := test.RaucConf(t, dir, testCompatible, pki.CA.CertFile, "codesign")
	out, err := test.Rauc(t, "-c", conf, "info", "--keyring", pki.CA.CertFile, path)
	if err != nil {
		t.Fatalf("rauc info: %v\n%s", err, out)
	}
	for _, want := range []string{"Compatible: \t'" + testCompatible + "'", "Bundle Format: \tverity", "Verified inline signature"} {
		if !strings.Contains(out, want) {
			t.Errorf("rauc info output lacks %q:\n%s", want, out)
		}
	}
	ext := filepath.Join(dir, "extracted")
	if out, err := test.Rauc(t, "-c", conf, "extract", "--keyring", pki.CA.CertFile, path, ext); err != nil {
		t.Fatalf("rauc extract: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(ext, "rootfs.img"))
	if err != nil {
		t.Fatalf("read extracted: %v", err)
	}
	want, err := os.ReadFile(img)
	if err != nil {
		t.Fatalf("read image: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("rauc extract gave %d bytes differing from the %d-byte input", len(got), len(want))
	}
	// rauc's default purpose (S/MIME) refuses a codeSigning leaf: the reason
	// deployments set check-purpose=codesign, and we default to it.
	confDefault := test.RaucConf(t, t.TempDir(), testCompatible, pki.CA.CertFile, "")
	if out, err := test.Rauc(t, "-c", confDefault, "info", "--keyring", pki.CA.CertFile, path); err == nil {
		t.Errorf("rauc info with the default purpose accepted a codeSigning leaf:\n%s", out)
	}
	// Tampering is caught by rauc too.
	bad := flipped(t, path, filepath.Join(dir, "bad.raucb"), 8192)
	if out, err := test.Rauc(t, "-c", conf, "extract", "--keyring", pki.CA.CertFile, bad, filepath.Join(dir, "ext2")); err == nil {
		t.Errorf("rauc extract accepted a bundle with a flipped payload byte:\n%s", out)
	}
}

// flipped copies src to dst with the byte at off inverted (off < 0 counts
// from the end).
func flipped(t testing.TB, src, dst string, off int64) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if off < 0 {
		off += int64(len(b))
	}
	b[off] ^= 0xff
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatalf("write: %v", err)
	}
	return dst
}

// layout returns sigOffset and, for verity, the payload (data) size.
func layout(t testing.TB, path string) (size, sigOffset int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	n := int64(binary.BigEndian.Uint64(b[len(b)-8:]))
	return int64(len(b)), int64(len(b)) - 8 - n
}

// TestRefusals is the bad-input table for the reader: each case is refused
// with the sentinel that names the reason, at Open or at CheckPayload.
func TestRefusals(t *testing.T) {
	pki := testPKI(t)
	dir := t.TempDir()
	img := randomImage(t, dir, "rootfs.img", 1<<20)
	good := ownBundle(t, dir, signerOf(pki.Leaf), img, 1)
	size, sigOff := layout(t, good)
	ok, err := OpenFile(good, keyringOf(t, pki.CA))
	if err != nil {
		t.Fatalf("OpenFile(good) error %v", err)
	}
	dataSize := ok.PayloadSize
	treeSize := ok.Manifest.Verity.Size
	ok.Close()
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	manifestAt := int64(bytes.Index(raw[sigOff:], []byte("compatible="))) + sigOff
	plainDir := t.TempDir()
	plain := test.RaucBundle(t, test.RaucBundleSpec{Format: "plain", Compatible: testCompatible,
		Images: map[string]string{"rootfs": img}, Cert: pki.Leaf.CertFile, Key: pki.Leaf.KeyFile},
		filepath.Join(plainDir, "plain.raucb"))

	variant := func(name string, edit func([]byte) []byte) string {
		b := edit(append([]byte(nil), raw...))
		p := filepath.Join(dir, name+".raucb")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatalf("write: %v", err)
		}
		return p
	}
	flip := func(off int64) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x01; return b }
	}
	other := func(s Signer) string {
		d := t.TempDir()
		return ownBundle(t, d, s, img, 1)
	}
	tests := []struct {
		name    string
		path    string
		kr      *Keyring
		opts    []Option
		want    error
		inCheck bool // refused by CheckPayload rather than Open
	}{
		{"payload byte", variant("payload", flip(dataSize/2)), nil, nil, ErrCorrupt, true},
		{"superblock byte", variant("superblock", flip(20)), nil, nil, ErrCorrupt, true},
		{"tree top block", variant("treetop", flip(dataSize+5)), nil, nil, ErrCorrupt, false},
		{"tree level 0", variant("treelow", flip(dataSize+treeSize-BlockSize+7)), nil, nil, ErrCorrupt, false},
		{"manifest byte", variant("manifest", flip(manifestAt+3)), nil, nil, ErrBadSignature, false},
		{"signature value", variant("sigval", flip(sigOff+(size-8-sigOff)-5)), nil, nil, ErrBadSignature, false},
		// A length one off moves the CMS start: it no longer parses.
		{"trailer length low byte", variant("trailer", flip(size-1)), nil, nil, ErrBadSignature, false},
		{"trailer length beyond file", variant("trailerhigh", flip(size-8)), nil, nil, ErrCorrupt, false},
		{"trailer length zero", variant("trailerzero", func(b []byte) []byte { copy(b[len(b)-8:], make([]byte, 8)); return b }), nil, nil, ErrCorrupt, false},
		{"truncated by one", variant("trunc1", func(b []byte) []byte { return b[:len(b)-1] }), nil, nil, ErrCorrupt, false},
		{"truncated to half", variant("trunchalf", func(b []byte) []byte { return b[:len(b)/2] }), nil, nil, ErrCorrupt, false},
		{"appended byte", variant("append", func(b []byte) []byte { return append(b, 0) }), nil, nil, ErrCorrupt, false},
		{"empty file", variant("empty", func([]byte) []byte { return nil }), nil, nil, ErrCorrupt, false},
		{"foreign signer", other(signerOf(pki.ForeignLeaf)), nil, nil, ErrBadSignature, false},
		{"foreign keyring", good, keyringOf(t, pki.ForeignCA), nil, ErrBadSignature, false},
		{"expired signer", other(signerOf(pki.Expired)), nil, nil, ErrBadSignature, false},
		{"not yet valid signer", other(signerOf(pki.NotYet)), nil, nil, ErrBadSignature, false},
		{"clock past expiry", good, nil, []Option{WithClock(func() time.Time { return pki.Leaf.Cert.NotAfter.Add(time.Minute) })}, ErrBadSignature, false},
		{"smime leaf under codesign", other(signerOf(pki.SMIME)), nil, nil, ErrBadSignature, false},
		{"no-EKU leaf under codesign", other(signerOf(pki.NoEKU)), nil, nil, ErrBadSignature, false},
		{"serverAuth leaf under smime", other(signerOf(pki.ServerAuth)), nil, []Option{WithPurpose(PurposeSMIME)}, ErrBadSignature, false},
		{"codesign leaf under smime", good, nil, []Option{WithPurpose(PurposeSMIME)}, ErrBadSignature, false},
		{"CA key signs", other(signerOf(pki.CA)), nil, nil, ErrBadSignature, false},
		{"plain payload byte", flipped(t, plain, filepath.Join(plainDir, "bad.raucb"), 9000), nil, []Option{WithWorkDir(plainDir)}, ErrCorrupt, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr := tt.kr
			if kr == nil {
				kr = keyringOf(t, pki.CA)
			}
			b, err := OpenFile(tt.path, kr, tt.opts...)
			if !tt.inCheck {
				if err == nil {
					b.Close()
					t.Fatalf("OpenFile() succeeded, want %v", tt.want)
				}
				if !errors.Is(err, tt.want) {
					t.Fatalf("OpenFile() error %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenFile() error %v, want it to pass and CheckPayload to fail", err)
			}
			defer b.Close()
			if err := b.CheckPayload(context.Background(), nil); !errors.Is(err, tt.want) {
				t.Fatalf("CheckPayload() error %v, want %v", err, tt.want)
			}
		})
	}
}

// TestPurposesAccept lists the signer chains each purpose accepts.
func TestPurposesAccept(t *testing.T) {
	pki := testPKI(t)
	dir := t.TempDir()
	img := randomImage(t, dir, "rootfs.img", 64<<10)
	tests := []struct {
		name    string
		signer  Signer
		purpose Purpose
	}{
		{"codesign leaf", signerOf(pki.Leaf), PurposeCodeSign},
		{"leaf under codeSigning intermediate", signerOf(pki.InterLeaf, pki.Intermediate), PurposeCodeSign},
		{"smime leaf", signerOf(pki.SMIME), PurposeSMIME},
		{"no-EKU leaf", signerOf(pki.NoEKU), PurposeSMIME},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ownBundle(t, t.TempDir(), tt.signer, img, 0)
			b, err := OpenFile(path, keyringOf(t, pki.CA), WithPurpose(tt.purpose))
			if err != nil {
				t.Fatalf("OpenFile(purpose %s) error %v", tt.purpose, err)
			}
			b.Close()
		})
	}
	// The intermediate is found in the keyring as well as in the CMS.
	s := signerOf(pki.InterLeaf)
	path := ownBundle(t, t.TempDir(), s, img, 0)
	if _, err := OpenFile(path, keyringOf(t, pki.CA)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("OpenFile(intermediate neither embedded nor in keyring) error %v, want ErrBadSignature", err)
	}
	b, err := OpenFile(path, keyringOf(t, pki.CA, pki.Intermediate))
	if err != nil {
		t.Fatalf("OpenFile(intermediate in keyring) error %v", err)
	}
	b.Close()
}

func TestParseKeyringRefuses(t *testing.T) {
	pki := testPKI(t)
	inter, err := os.ReadFile(pki.Intermediate.CertFile)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	tests := []struct {
		name string
		pem  []byte
	}{
		{"empty", nil},
		{"intermediate only", inter},
		{"not PEM", []byte("hello")},
		{"CRL", []byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseKeyring(tt.pem); err == nil {
				t.Errorf("ParseKeyring(%s) succeeded, want an error", tt.name)
			}
		})
	}
}

// TestChangedAfterCheck: the file is rewritten in place after the payload
// check; reads through the bundle verify every block again and refuse the
// new bytes.
func TestChangedAfterCheck(t *testing.T) {
	pki := testPKI(t)
	dir := t.TempDir()
	img := randomImage(t, dir, "rootfs.img", 2<<20)
	path := ownBundle(t, dir, signerOf(pki.Leaf), img, 0)
	b, err := OpenFile(path, keyringOf(t, pki.CA))
	if err != nil {
		t.Fatalf("OpenFile() error %v", err)
	}
	defer b.Close()
	if err := b.CheckPayload(context.Background(), nil); err != nil {
		t.Fatalf("CheckPayload() error %v", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open for tampering: %v", err)
	}
	if _, err := f.WriteAt([]byte("tampered"), 1<<20); err != nil {
		t.Fatalf("tamper: %v", err)
	}
	f.Close()
	im, _ := b.Manifest.Image("rootfs")
	r, err := b.OpenImage(im)
	if err != nil {
		t.Fatalf("OpenImage() error %v", err)
	}
	defer r.Close()
	var sink bytes.Buffer
	_, err = r.WriteTo(&sink)
	var be *BlockError
	if !errors.As(err, &be) || !errors.Is(err, ErrCorrupt) || be.Block != 256 {
		t.Fatalf("reading a tampered image: error %v, want a BlockError for block 256", err)
	}
	if int64(sink.Len()) >= 1<<20 {
		t.Errorf("%d bytes were handed out, the tampered block is at %d", sink.Len(), 1<<20)
	}
}
