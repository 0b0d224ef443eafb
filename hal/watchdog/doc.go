// Package watchdog drives a Linux watchdog device (/dev/watchdog, the
// WDIOC_* ioctls of the kernel's watchdog API): open arms it, Pet keeps the
// board alive, and a board whose software stops petting resets.
//
// Threat: a phone that hangs, or keeps running a slot that never becomes
// healthy, instead of resetting so the bootloader can count the failed try
// and fall back. Close leaves the timer running (no magic close): only
// Disarm, used right before an orderly reboot, stops it.
//
// Like all of hal/ it holds device code and no policy (when to stop petting
// is PID 1's decision) and imports nothing of hardphone's. system imports
// it, for PID 1.
package watchdog
