// Package config is the agent's configuration schema: TOML for people, parsed
// into an immutable, validated Config. A bad file returns an error naming the
// key, and the caller keeps whatever config it was running with.
//
// Threat: a config that silently weakens security. Every knob that could do
// so (MD5 digest, plain SIP transports) must be asked for explicitly, and
// there is no knob that disables TLS verification or SRTP.
//
// Imported by agent, agent/sip, system and cmd/hardphone; it imports
// crypto/policy only.
package config
