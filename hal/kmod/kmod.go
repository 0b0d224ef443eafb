package kmod

import "strings"

// compressedSuffixes are the module file endings the kernel decompresses
// itself when finit_module gets MODULE_INIT_COMPRESSED_FILE (Linux 6.1+
// with CONFIG_MODULE_DECOMPRESS; Debian's 6.12 kernels ship .ko.xz).
var compressedSuffixes = []string{".ko.xz", ".ko.zst", ".ko.gz"}

// compressed reports whether path names a compressed module file.
func compressed(path string) bool {
	for _, s := range compressedSuffixes {
		if strings.HasSuffix(path, s) {
			return true
		}
	}
	return false
}

// Load loads the module in the file at path with the parameter string
// params ("soft_margin=5", or ""). A module that is already loaded is not an
// error: built-in drivers and an earlier load both end there.
func Load(path, params string) error { return load(path, params) }
