package bundle

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const raucVerityManifest = `[update]
compatible=test-board
version=1.2.3

[bundle]
format=verity
verity-hash=904bbe899f4cb4d4961721abe7c4816c52549615308f2a063f30985827ed5a90
verity-salt=f299308f79a050de66beb73f068d2981a03fae7193c04c2a52e164298c1d0fb5
verity-size=28672

[image.rootfs]
sha256=58d9752f89b523f4a93d0bb1f07b586075b60a3164419b2106c7f7b6e97fe202
size=3000000
filename=rootfs.img
`

const sum = "58d9752f89b523f4a93d0bb1f07b586075b60a3164419b2106c7f7b6e97fe202"

func TestParseManifestRauc(t *testing.T) {
	m, err := ParseManifest([]byte(raucVerityManifest))
	if err != nil {
		t.Fatalf("ParseManifest(rauc 1.8 verity manifest) error %v", err)
	}
	if m.Compatible != "test-board" || m.Version != "1.2.3" || m.Format != FormatVerity || m.Verity == nil ||
		m.Verity.Size != 28672 || len(m.Verity.Salt) != 32 || len(m.Images) != 1 {
		t.Fatalf("ParseManifest() = %+v", m)
	}
	im := m.Images[0]
	if im.SlotClass != "rootfs" || im.Filename != "rootfs.img" || im.Size != 3000000 || im.SHA256[0] != 0x58 {
		t.Errorf("image = %+v", im)
	}
	if m.HasSecurityVersion || m.SecurityVersion != 0 {
		t.Errorf("security version = %d (set %v), want 0 unset", m.SecurityVersion, m.HasSecurityVersion)
	}
	again, err := ParseManifest(m.Marshal())
	if err != nil || !reflect.DeepEqual(again, m) {
		t.Errorf("ParseManifest(Marshal()) = %+v, %v, want %+v", again, err, m)
	}
}

func TestParseManifestAccepts(t *testing.T) {
	img := "\n[image.rootfs]\nfilename=r.img\nsha256=" + sum + "\nsize=1\n"
	tests := []struct {
		name  string
		text  string
		check func(*Manifest) bool
	}{
		{"security version", "[update]\ncompatible=b\n[meta.hardphone]\nsecurity-version=18446744073709551615\n" + img,
			func(m *Manifest) bool { return m.SecurityVersion == 1<<64-1 && m.HasSecurityVersion }},
		{"other meta kept", "[update]\ncompatible=b\n[meta.vendor]\nbuild-id=42\nx=\n" + img,
			func(m *Manifest) bool { return m.Meta["vendor"]["build-id"] == "42" && m.Meta["vendor"]["x"] == "" }},
		{"escapes", "[update]\ncompatible=b\ndescription=\\sa\\tb\\nc\\\\d\\r \n" + img,
			func(m *Manifest) bool { return m.Description == " a\tb\nc\\d\r " }},
		{"comments, blanks and spaces around =", "# c\n\n[update]\n  compatible = b\n#x\n" + img,
			func(m *Manifest) bool { return m.Compatible == "b" }},
		{"no bundle group is plain", "[update]\ncompatible=b\n" + img,
			func(m *Manifest) bool { return m.Format == FormatPlain && m.Verity == nil }},
		{"empty slot hooks", "[update]\ncompatible=b\n[image.rootfs]\nfilename=r.img\nsha256=" + sum + "\nsize=0\nhooks=\nadaptive=block-hash-index\n",
			func(m *Manifest) bool { return m.Images[0].Size == 0 && m.Images[0].Adaptive == "block-hash-index" }},
		{"two slot classes", "[update]\ncompatible=b\n" + img + "[image.appfs]\nfilename=a.img\nsha256=" + sum + "\nsize=2\n",
			func(m *Manifest) bool { return len(m.Images) == 2 && m.Images[1].SlotClass == "appfs" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tt.text))
			if err != nil {
				t.Fatalf("ParseManifest() error %v", err)
			}
			if !tt.check(m) {
				t.Errorf("ParseManifest() = %+v", m)
			}
			again, err := ParseManifest(m.Marshal())
			if err != nil || !reflect.DeepEqual(again, m) {
				t.Errorf("round trip = %+v, %v, want %+v\n%s", again, err, m, m.Marshal())
			}
		})
	}
}

func TestParseManifestRefuses(t *testing.T) {
	head := "[update]\ncompatible=b\n"
	img := func(kv string) string {
		return head + "[image.rootfs]\nfilename=r.img\nsha256=" + sum + "\nsize=1\n" + kv
	}
	imgWith := func(filename, size, sha string) string {
		return head + "[image.rootfs]\nfilename=" + filename + "\nsha256=" + sha + "\nsize=" + size + "\n"
	}
	tests := []struct {
		name string
		text string
		want error
	}{
		{"missing compatible", "[update]\nversion=1\n", errMissing},
		{"empty compatible", "[update]\ncompatible=\n", errMissing},
		{"no update group", "[meta.x]\na=b\n", errMissing},
		{"unknown group", head + "[foo]\na=b\n", errUnknown},
		{"unknown key", "[update]\ncompatible=b\ncompatibel=c\n", errUnknown},
		{"locale key", "[update]\ncompatible=b\ndescription[de]=x\n", errSyntax},
		{"duplicate key", "[update]\ncompatible=b\ncompatible=c\n", errDuplicate},
		{"duplicate group", head + "[update]\nversion=2\n", errDuplicate},
		{"key before group", "compatible=b\n[update]\n", errSyntax},
		{"no =", head + "garbage\n", errSyntax},
		{"bad escape", "[update]\ncompatible=b\\x\n", errSyntax},
		{"trailing backslash", "[update]\ncompatible=b\\\n", errSyntax},
		{"control char", "[update]\ncompatible=b\x01\n", errSyntax},
		{"CRLF", "[update]\r\ncompatible=b\r\n", errSyntax},
		{"not UTF-8", "[update]\ncompatible=\xff\n", errSyntax},
		{"unterminated group", "[update\ncompatible=b\n", errSyntax},
		{"hooks group", head + "[hooks]\nfilename=hook.sh\n", ErrUnsupported},
		{"handler group", head + "[handler]\nfilename=h.sh\n", ErrUnsupported},
		{"slot hooks", img("hooks=install\n"), ErrUnsupported},
		{"crypt format", head + "[bundle]\nformat=crypt\n", ErrUnsupported},
		{"unknown format", head + "[bundle]\nformat=zip\n", errBadValue},
		{"verity keys partial", head + "[bundle]\nformat=verity\nverity-size=4096\n", errMissing},
		{"verity without keys", head + "[bundle]\nformat=verity\n", errMissing},
		{"verity keys in plain", head + "[bundle]\nformat=plain\nverity-hash=" + sum + "\nverity-salt=00\nverity-size=4096\n", errBadValue},
		{"verity-size not aligned", head + "[bundle]\nformat=verity\nverity-hash=" + sum + "\nverity-salt=00\nverity-size=4097\n", errBadValue},
		{"verity-hash short", head + "[bundle]\nformat=verity\nverity-hash=00\nverity-salt=00\nverity-size=4096\n", errBadValue},
		{"path traversal", imgWith("../../etc/shadow", "1", sum), errBadValue},
		{"path with slash", imgWith("a/b.img", "1", sum), errBadValue},
		{"dot dot", imgWith("..", "1", sum), errBadValue},
		{"manifest as image", imgWith("manifest.raucm", "1", sum), errBadValue},
		{"long name", imgWith(strings.Repeat("a", 256), "1", sum), errBadValue},
		{"size 2^64", imgWith("r.img", "18446744073709551616", sum), errBadValue},
		{"size 2^63", imgWith("r.img", "9223372036854775808", sum), errBadValue},
		{"size negative", imgWith("r.img", "-1", sum), errBadValue},
		{"size plus", imgWith("r.img", "+1", sum), errBadValue},
		{"size hex", imgWith("r.img", "0x10", sum), errBadValue},
		{"sha256 short", imgWith("r.img", "1", sum[:62]), errBadValue},
		{"sha256 not hex", imgWith("r.img", "1", "zz"+sum[2:]), errBadValue},
		{"image without size", head + "[image.rootfs]\nfilename=r.img\nsha256=" + sum + "\n", errMissing},
		{"image variant", head + "[image.rootfs.v2]\nfilename=r.img\n", ErrUnsupported},
		{"bad slot class", head + "[image.ro$t]\nfilename=r.img\n", errBadValue},
		{"security version 2^64", head + "[meta.hardphone]\nsecurity-version=18446744073709551616\n", errBadValue},
		{"security version negative", head + "[meta.hardphone]\nsecurity-version=-1\n", errBadValue},
		{"security version text", head + "[meta.hardphone]\nsecurity-version=one\n", errBadValue},
		{"security version typo", head + "[meta.hardphone]\nsecurity_version=1\n", errUnknown},
		{"too large", head + "[meta.x]\na=" + strings.Repeat("x", MaxManifestSize) + "\n", errBadValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tt.text))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseManifest() = %+v, %v, want %v", m, err, tt.want)
			}
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Errorf("ParseManifest() error %T, want *ManifestError", err)
			}
		})
	}
}
