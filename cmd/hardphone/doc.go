// Command hardphone is the only binary on the phone and also the desktop
// softphone: run (the agent), call, status, version, and the device
// subcommands creds, identity, update and lockdown.
package main
