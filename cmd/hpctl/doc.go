// Command hpctl is hardphone's host-side tool for vendors and admins; it
// never runs on a phone. `hpctl bundle create` makes signed RAUC verity
// bundles (squashfs by mksquashfs, hash tree and CMS in Go) that Debian's
// rauc accepts; `hpctl bundle info` and `hpctl bundle verify` show and check
// any RAUC bundle against a keyring, the payload included. `hpctl image
// build` makes a board's disk image, slot image and bundle (image.go).
// `hpctl fleet` is the admin side of hpfleet: `fleet init` lays out a
// fleet PKI, the other fleet commands talk to the server over mutual TLS
// with an admin certificate (fleet.go).
//
// Threat: a vendor pipeline that signs something other than what it means
// to. create fills every image's sha256 and size itself and verify reads the
// bundle back the way a phone does.
//
// Nothing imports it; it imports board (pure data), update/bundle,
// update/bootchooser and its ubootscript, internal/cli, fleet/api,
// fleet/audit (Verify), fleet/ca, fleet/client, fleet/configdoc (which
// reads documents with the phone's agent/config), fleet/tufrepo and the
// console's consoleapi and consoleclient; never the agent, device code or
// the fleet server's store.
package main
