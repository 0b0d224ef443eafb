// Package nft owns hardphone's one nftables table, "hardphone" in the inet
// family, through netlink (github.com/google/nftables; no nft binary at run
// time). It renders a Ruleset (input default-drop, established/related
// accepted, each allowed port opened only to its source networks, optional
// output filtering, RTP pinholes in named sets) and applies it atomically and
// idempotently, diffs the live table against it, and adds and removes
// pinhole elements per call.
//
// Threat: a port left reachable from anywhere, and rules that drift from what
// was applied. Apply replaces the whole table in one netlink transaction, so
// no packet ever sees a half-built ruleset, and Diff compares every chain,
// set and rule expression with the wanted one. Tables of others are never
// read for writing, flushed or deleted.
//
// Like all of hal/ it holds mechanism, not policy: which ports and sources
// come from agent/lockdown. It imports nothing of hardphone's; system opens
// it and agent/lockdown uses it.
package nft
