// Package tufrepo makes and maintains the fleet's two TUF repositories
// (The Update Framework specification 1.0.31, as Uptane uses it): the
// vendor's image repository, which lists signed RAUC bundles, and the
// director, which tells one device which bundle and which configuration
// document it should have.
//
// An image repository is a directory (Init, Open):
//
//	DIR/repo.json           lifetimes of the roles (not served)
//	DIR/staged/             root or targets metadata waiting for more
//	                        signatures (not served)
//	DIR/public/             the document root any HTTP server serves as is:
//	  N.root.json             every root version, 1..N (the client's chain)
//	  timestamp.json          the only file without a version in its name
//	  V.snapshot.json         consistent snapshots (§6.2): every file but
//	  V.targets.json          timestamp.json is named by its version or hash
//	  targets/<sha256>.<name> the bundles, named by their hash
//
// Keys never live in the repository: each is a PKCS#8 PEM file (ECDSA P-256
// or Ed25519) the signer names, readable by its owner only (LoadKey refuses
// anything else), with its public half in FILE.pub. Root and targets keys
// stay offline; a role whose threshold needs more keys than one machine
// holds is staged and completed with AddSignature by each key holder.
// Snapshot and timestamp keys sign what is already approved and can live on
// the host that refreshes the timestamp.
//
// The director (Director) publishes one small TUF repository per device,
// served under /director/<device-id>/, all under one director root whose
// root key stays offline while its targets, snapshot and timestamp keys are
// online in hpfleet. Every device's timestamp, snapshot and targets carry
// the device ID in their signed part, so a device refuses another device's
// metadata before it changes its own trusted state, and the timestamp
// carries the time it was signed, the phone's signed time. The director's
// targets role may require a threshold of signatures (admin approval): the
// online key signs, StageDevice hands out the targets for the others'
// signatures, PublishStaged checks the threshold before anything is served.
//
// Threat: a stolen online key or a compromised server must not be able to
// ship a bundle the offline targets keys did not list (the phone checks the
// director against the image repository), nor change what a role with a
// threshold approves with fewer keys. Every publication verifies the whole
// chain with go-tuf's own checks before a file is written, files are
// replaced by rename so an HTTP server never serves half a file, and the
// timestamp is written last so it never points at metadata not yet there.
//
// Imported by cmd/hpctl (the vendor's repository commands) and by hpfleet:
// fleet/director, fleet/rollout, fleet/server and cmd/hpfleet; never by the
// phone, whose client is agent/uptane. It
// imports update/bundle to read a bundle's verified manifest.
package tufrepo
