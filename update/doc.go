// Package update is hardphone's A/B updater: it installs RAUC bundles into
// the inactive slot, switches the U-Boot bootchooser order (the boot order
// and attempt counters of update/bootchooser) only once the slot is written
// and synced, marks the
// booted slot good after a healthy boot, detects a boot that fell back to
// the old slot as a rollback, and refuses bundles whose security version is
// below the anti-rollback floor. The floor also rules the boot environment
// (bootfloor.go): a slot the floor has passed leaves the boot order, and a
// booted slot below it is reported as a rollback attack and never blessed.
// ConfirmBoot restores the booted slot's counter without marking it good,
// for a boot that runs but cannot prove itself (the registrar unreachable).
//
// Threat: firmware that is not the vendor's, a validly signed old image with
// known holes, and a power cut at any moment. Every decision is made before
// the first write (verify, then commit): signature, manifest, compatible,
// floor, sizes, and for verity bundles every payload block. The slot being
// written is marked unbootable first, so a cut leaves the old slot selected;
// the boot order names the new slot only after it is complete on disk.
//
// Imported by system (which builds it), agent (which runs it) and
// agent/control (status types). It imports update/bundle,
// update/bootchooser and hal/blockdev; the boot environment (hal/ubootenv) and the floor (hal/tpm)
// reach it through the BootEnv and Floor interfaces it declares.
package update
