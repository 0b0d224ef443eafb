// Package fleetconfig keeps the phone's record of the configuration
// documents the fleet's director sent it: the current one (on trial until
// the accounts prove it, then good), the previous good one to fall back
// to, and the last document refused or reverted with the reason. It owns
// the state file's bucket "fleetconfig" and writes each change in one
// bbolt transaction, so a power cut leaves either the old record or the
// new one, never a current document without its previous.
//
// Configuration gets the mark-good discipline firmware has: a document
// applied with Apply is on trial; MarkGood proves it; Revert puts the
// previous one back and remembers the reverted version, which is never
// applied again (the director must publish a newer one). A version not
// above the current one is refused: the director's versions only grow.
//
// Threat: a document that breaks the phone (it stops registering) must
// not keep it broken, and an old document (replayed, or reverted) must not
// come back. The documents themselves were verified by agent/uptane and
// agent/config before they reach this package; it stores what it is given.
//
// Imported by agent (apply, trial, revert) and system (which reads the
// current document to merge it over the image's config). It imports bbolt
// and nothing of hardphone's.
package fleetconfig
