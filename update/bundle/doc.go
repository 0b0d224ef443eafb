// Package bundle reads and writes RAUC bundles (formats "plain" and
// "verity", as RAUC 1.8 makes them) without loop devices, dm-verity or
// cgo: the CMS signature checked against a keyring with RAUC's purpose rules,
// the manifest parsed strictly, the dm-verity hash tree checked against the
// signed root before any payload byte is trusted, and every payload block
// checked against the tree as it is read.
//
// Threat: firmware that did not come from the vendor, and a bundle file that
// changes between check and use. Nothing from a bundle is handed out before
// its signature is verified; for verity bundles each 4 KiB block is verified
// on every read, and plain bundles are copied to a private file while their
// digest is computed, so later reads cannot see other bytes.
//
// Imported by update and system (on the phone), cmd/hpctl (on the build
// host) and fleet/tufrepo (a bundle's verified manifest); it imports
// nothing of hardphone's. Its accepted CMS digests and key sizes
// are local until crypto/policy grows bundle rules (TODO(#4)).
package bundle
