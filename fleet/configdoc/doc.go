// Package configdoc composes the configuration documents the director
// publishes: group defaults plus one device's overrides, in the phone's own
// config schema (TOML), validated with the phone's parser (agent/config),
// with the fleet-managed accounts' sealed passwords added.
//
// Composition: tables merge key by key, recursively, the device's value
// winning; [[account]] entries merge by name (or user when unnamed), the
// device's keys winning, and device accounts the group does not name are
// appended; any other array is replaced whole.
//
// Sealed secrets: an account whose password the fleet manages carries
// `password_sealed = "hps1...."` next to its `password_cred` (the
// credential-store name the phone opens it into, fleet/sealed); the
// phone's schema gains the key on the phone side. Validation runs on the
// document without the sealed values, which the fleet writes itself.
//
// Threat: documents come from admins (possibly mistaken) and end up
// controlling phones; a document that does not parse or validate as the
// phone would is refused with the phone's own reason, before anything is
// published. Sizes are bounded; nothing here touches secrets in clear.
//
// Imported by fleet/director (composition), fleet/rollout (a rollout's
// document parsed and its security policy changes found before it
// starts), fleet/server (its refusal error) and cmd/hpctl (an approver
// reads the document it signs). It imports agent/config (read-only, to
// validate with the phone's parser): the one package of the fleet server
// that reaches into agent/, on purpose, so the fleet never accepts a
// document the phone would refuse.
package configdoc
