// Package system is the one place that knows how a phone is assembled: it
// turns a board description (package board) and a validated config into
// the parts the agent runs on (the state file, the credential store and
// its TPM, the boot environment and slots, the A/B updater, the lockdown
// enforcer, the TLS trust anchors and identity, audio files, the clients of
// the fleet's repositories with the fleet's configuration document merged
// over the image's config: OpenDaemon) and hands them to agent.New through
// options. Nothing else builds those parts, so every
// entry point (the agent, `hardphone update` with or without a running
// agent, PID 1, the tests) gets the same updater and the same
// anti-rollback floor rule: the TPM's NV counter whenever the credential
// store is a TPM.
//
// Threat: two builders of one part that disagree — an updater whose floor
// depends on how it was started, a boot environment read at other offsets
// than the bootloader writes. Every builder lives here once, and parts are
// opened only when a command needs them (a one-shot call opens no updater).
//
// Imported by cmd/hardphone and pid1 (and by the QEMU test guest
// test/qemu/alsaguest, for the phone's call-audio path); it imports board,
// hal, crypto, update and agent, and nothing imports it below cmd.
package system
