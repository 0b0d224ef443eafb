// Package provision is the phone's side of the fleet: attested zero-touch
// enrolment with the TPM identity key, renewal of the device certificate at
// two-thirds of its life, signed check-ins polled with jitter, and the
// retire order (wipe the credentials). It drives the credential store it is
// given and talks to hpfleet through fleet/client.
//
// Threat: the network and whoever answers on it. The fleet server's CA and
// name are pinned by the phone's image (Config), never learned from the
// network; an address from DHCP (option 43/66) is only where to dial. A
// certificate the server issues is checked (identity key, client usage,
// device CA) before it is stored. A phone that cannot enrol or renew keeps
// what it has and retries with backoff; a check-in answer can only ask for
// a renewal (which the phone's own key still authenticates) or a wipe,
// which is exactly what retiring the phone on the fleet means.
//
// Imported by system, which builds the Client from the config's [provision]
// table (system/provision.go), and agent, which runs it (WithProvisioning).
// It imports crypto/credstore and hal/tpm for their types, fleet/api and
// fleet/client.
package provision
