// Command hardphone is the only binary on the phone and also the desktop
// softphone: run (the agent), call, status, version, and the device
// subcommands creds, identity, update and lockdown. As PID 1 on a phone it
// is package pid1.
//
// It assembles nothing itself: every part comes from package system (the
// wiring), and a command asks only for what it needs (a one-shot call opens
// no updater and no control socket). It imports system, the agent family
// (agent for the agent system built, and the config, control, events,
// history and sip types it speaks), pid1 and internal/cli; never board,
// hal, crypto or update directly.
package main
