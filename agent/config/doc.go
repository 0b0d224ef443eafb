// Package config is the agent's configuration schema: TOML for people, parsed
// into an immutable, validated Config. A bad file returns an error naming the
// key, and the caller keeps whatever config it was running with.
//
// Threat: a config that silently weakens security. Every knob that could do
// so (MD5 digest, plain SIP transports) must be asked for explicitly, and
// there is no knob that disables TLS verification or SRTP. A fleet
// configuration document (document.go) is an overlay on the image's config
// that may set only what a director's online key may be trusted with: it
// never sets what the phone trusts, exposes, or where its secrets live.
//
// Imported by agent, agent/sip, system and cmd/hardphone, by the fleet's
// fleet/configdoc (to validate documents as the phone will) and by the QEMU
// test guest test/qemu/alsaguest (its [audio] table); it imports
// crypto/policy and agent/dialplan.
package config
