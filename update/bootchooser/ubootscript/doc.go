// Package ubootscript renders the U-Boot boot script that implements the
// bootchooser (package update/bootchooser's variables) over a redundant
// fw_env block. It is the image builder's: only cmd/hpctl imports it, so
// the phone's binary carries no template engine. It imports
// update/bootchooser for the variable names and nothing else of ours.
package ubootscript
