// Package blockdev opens update slots for writing: a partition (block
// device) on a phone, or a plain file of the slot's size on a desktop or in
// tests, through the same calls. A slot is never created, grown or
// truncated here: its size is what the board laid out.
//
// Threat: a slot that looks written but is not on stable storage. A Writer
// is finished only by Commit, which syncs and then closes and reports either
// error; the updater switches the boot order only after Commit returned nil.
//
// Like all of hal/ it holds device code and no policy and imports nothing of
// hardphone's. update and system import it.
package blockdev
