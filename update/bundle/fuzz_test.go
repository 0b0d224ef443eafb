package bundle

import (
	"reflect"
	"testing"
)

// FuzzParseManifest: no panic on any input, and whatever parses marshals
// into a manifest that parses to the same value (round trip).
//
//fuzz:budget 70000
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(raucVerityManifest))
	f.Add([]byte("[update]\ncompatible=b\ndescription=\\sx\\n\n[meta.hardphone]\nsecurity-version=3\n[meta.v]\nk=\\t\n"))
	f.Add([]byte("[update]\ncompatible=hardphone-qemu-arm64\nversion=2026.12.1\n\n[bundle]\nformat=plain\n\n[image.rootfs]\nsha256=" + sum + "\nsize=50331648\nfilename=rootfs.ext4\n"))
	f.Add([]byte("[update]\ncompatible=b\n[image.rootfs]\nfilename=../x\nsha256=" + sum + "\nsize=18446744073709551616\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		out := m.Marshal()
		again, err := ParseManifest(out)
		if err != nil {
			t.Fatalf("ParseManifest(Marshal(m)) error %v\ninput %q\nmarshalled %q", err, b, out)
		}
		if !reflect.DeepEqual(m, again) {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v\nmarshalled %q", m, again, out)
		}
	})
}
