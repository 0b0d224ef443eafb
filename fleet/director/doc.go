// Package director is hpfleet's Uptane director: per device, it composes
// the configuration document (group defaults plus device overrides,
// fleet/configdoc), generates and seals the passwords of the accounts the
// fleet manages (fleet/sealed, to the phone's TPM-resident sealing key),
// writes them to the registrar (fleet/registrar, through the Registrar
// interface), names the firmware the image repository lists, signs the
// device's director repository with the online keys (fleet/tufrepo), and
// keeps it fresh: a background worker on every replica re-signs
// timestamps well before they expire and rotates passwords on schedule.
// It serves each device's repository files (File) for the server's
// /director/<device-id>/ endpoint and learns from check-in reports which
// configuration a phone runs (Reported), which ends a rotation's overlap.
//
// State: everything lives in the fleet store (store.Provision, one record
// per device written by compare-and-swap), so any number of replicas over
// PostgreSQL share it; a replica that loses a race starts the operation
// again from the new state. No password is ever stored in clear: a new one
// exists in memory only until it is hashed for the registrar and sealed
// for the phone; the pending state (sealed value and hashes) is stored
// before the registrar is written, so a crash in between is finished by
// the next attempt instead of losing the phone's only valid password.
//
// Threat: the director's online keys can rename firmware only within what
// the offline image keys listed (phones check both); an admin's document
// that the phone would refuse is refused here with the phone's reason;
// sealed values open only in the device's TPM, for that device, document
// version and credential name. Everything read from the store is parsed
// with bounds.
//
// Imported by fleet/server, fleet/rollout (which moves devices through it)
// and cmd/hpfleet.
package director
