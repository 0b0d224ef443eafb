// Package ubootenv reads and writes U-Boot environment blocks in the format
// of U-Boot's saveenv and libubootenv's fw_printenv/fw_setenv: a CRC32, an
// optional flags byte for redundant copies, then key=value pairs, each ended
// by a NUL byte, and an empty pair ending the list.
//
// Threat: a power cut while the environment is written. With two redundant
// copies, Save writes only the copy that is not current and gives it the next
// flags value, then syncs; until that write is complete its CRC does not
// match, so every reader (U-Boot, fw_printenv, this package) keeps using the
// previous copy. A block whose CRC does not match is never trusted.
//
// Like all of hal/ it holds device code and no policy and imports nothing of
// hardphone's. system imports it; update/ reaches it only through its own
// BootEnv interface, which Store satisfies.
package ubootenv
