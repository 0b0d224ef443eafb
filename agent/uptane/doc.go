// Package uptane is the phone's side of the fleet's two TUF repositories,
// arranged as Uptane arranges them: the vendor's image repository (offline
// keys, the signed RAUC bundles) and the director (online keys, per device:
// which bundle and which configuration document this phone should have).
//
// Client.Refresh runs the TUF client workflow (The Update Framework
// specification 1.0.31 §5) for each repository with go-tuf's
// trustedmetadata checks: the root chain N+1.root.json, N+2.root.json ...
// each signed by a threshold of the old and the new root keys, then the
// timestamp (no rollback of its version or the snapshot's), the snapshot
// (length and hashes from the timestamp, no role version going back) and
// the targets (length and hashes from the snapshot), none expired at the
// clock the client is handed (the phone's time floor, never time.Now).
// Every download is bounded by the length the metadata gives, or by a hard
// cap where it gives none, before a byte of it is parsed.
//
// The trusted set of each repository (root, timestamp, snapshot, targets:
// the exact bytes verified) lives in the phone's state file, bucket
// "uptane", one sub-bucket per repository. A refresh verifies everything
// in memory first and writes every repository whose new set verified in
// one bbolt transaction at the end: a crash, a refused file or an expired
// role leaves the previous trusted set byte for byte, never a mix (the
// lesson of tough's CVE-2025-2888, which cached a timestamp before its
// rollback check).
//
// Resolve applies Uptane's rule: firmware is returned only when the
// director names it and the image repository lists it with the same
// length, hashes and custom fields (compatible, version, security
// version); the configuration document comes from the director alone.
// Director metadata must name this device in its signed timestamp,
// snapshot and targets, so one device's metadata replayed to another is
// refused before it changes anything. Metadata that expired (a frozen
// server, or an attacker replaying old files) is never used: Status
// reports the repository stale, with the role that expired, and the last
// good set stays. The director's timestamp carries signed time (Status,
// SignedTime) for the phone's time floor.
//
// Threat: everything between the phone and the signing keys: the network,
// the HTTP servers and mirrors, a compromised director server holding
// only the online keys (it cannot make the phone install a bundle the
// offline image keys did not list), replay, freeze, mix-and-match, endless
// or oversized downloads.
//
// Imported by the agent's wiring (system hands it the *bbolt.DB, the time
// floor's clock and a fetcher over the phone's mutual-TLS client), by agent
// (which follows the repositories) and by fleet/rollout/rollouttest (the
// simulated phone of the rollout tests). It imports go-tuf's metadata and
// trustedmetadata packages and bbolt, and nothing of hardphone's; never the
// fleet server.
package uptane
