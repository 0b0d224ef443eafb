// Package tpm is hardphone's TPM 2.0 device layer: it opens a TPM
// (/dev/tpmrm0, a swtpm unix socket or swtpm over TCP) and offers the few
// operations the phone needs, on go-tpm's pure-Go tpm2 direct API: an ECC
// P-256 storage root key (SRK), sealing a secret under it with an optional
// PCR and NV-counter policy, a non-exportable ECC P-256 signing key used as
// a crypto.Signer, a non-exportable ECC P-256 key-agreement key and
// TPM2_ECDH_ZGen with it (what the fleet seals a phone's secrets to), PCR
// reads and extends, monotonic NV counters, and the
// phone's half of attestation: the EK certificates a TPM's manufacturer
// stored in NV, the EK derived from its TCG template and checked against
// its certificate, and TPM2_ActivateCredential of a credential a server
// made for a key's Name.
//
// Threat: a passive or active attacker on the TPM bus (a SPI/I2C probe, or a
// process that can read the swtpm socket). Every command that carries a
// secret (TPM2_Create of a sealed object, TPM2_Unseal, TPM2_ECDH_ZGen) runs in a session
// salted to the SRK with AES-128-CFB parameter encryption, so the secret
// never crosses the bus in clear (a test taps the bus to check). Commands
// authorised by the owner (NV define and increment) use sessions salted to
// the SRK too, so a future owner password cannot be learnt off the bus.
// ActivateCredential returns its secret in a session salted to the SRK
// that encrypts it too. Signing, PCR, counter and EK certificate reads
// carry nothing secret and use plain password sessions. Blobs the TPM
// hands out are bound to this TPM's SRK: another TPM refuses them
// (ErrBadBlob).
//
// Like all of hal/ it holds device code and no policy: which PCRs, which NV
// indices and what a sealed secret means are the caller's choices. It
// imports nothing of hardphone's. system opens it, crypto/credstore and
// agent/provision use it (and the rollout tests' simulated phone,
// fleet/rollout/rollouttest); update reaches its NV counter through the
// Floor interface.
package tpm
