// Package credstore keeps hardphone's named secrets (SIP passwords such as
// "sip/alice") and its device identity key. Values are AES-256-GCM
// encrypted under a key-encryption key (KEK), with the secret's name and
// version bound in as associated data, and stored in the agent's bbolt
// file. The KEK is sealed by the TPM under an ECC P-256 storage key,
// optionally bound to PCRs, and bound to an NV counter that Wipe advances;
// the identity key is an ECC P-256 key the TPM generated and will never
// release, used as a crypto.Signer for mutual TLS. A software protector (KEK
// in a 0600 file, identity key encrypted under it) exists for desktops
// without a TPM: it is only ever chosen explicitly and reports itself as
// weaker.
//
// The consumer's view (the SIP layer):
//
//	st, _ := store.Open(stateDir)                    // agent/store: the bbolt file
//	p, _ := credstore.NewTPMProtector(t, credstore.OwnTPM()) // t from hal/tpm.Open; or NewSoftwareProtector(file)
//	cs, _ := credstore.Open(st.DB(), p)
//	cert, _ := cs.Identity()                         // *tls.Certificate, PrivateKey in the TPM
//	pw, _ := cs.Get("sip/alice")                     // Secret; logs and prints as REDACTED
//
// The wiring (system.OpenCredentials) does the first three lines from a
// config's credential_store.
//
// Threat: theft of the state file or of the whole flash (every value is
// ciphertext; the KEK exists only inside this TPM), tampering with it (a
// flipped byte, a value moved to another name, a swapped record: each
// fails authentication and only that entry is lost; the KEK record is kept
// twice and repaired from its good copy), moving it to another device (a
// different TPM cannot unseal the KEK, and says so), booting other software
// (with a PCR policy the TPM refuses to unseal, on every operation, not
// just at open) and recovering old data after a factory reset (Wipe
// increments the NV counter the KEK is sealed to, so no copy of an old
// sealed KEK can ever be unsealed again). No value is ever logged or
// printed: Secret redacts itself everywhere.
//
// For attested enrolment it describes the identity key and the TPM it lives
// in (IdentityAttestation: the EK certificate, the key's TPMT_PUBLIC and
// Name) and has the TPM open the fleet's credential for it
// (ActivateCredential); the fleet's half is fleet/attest.
//
// For secrets the fleet sends, it holds a second TPM key, the sealing key
// (an ECC P-256 key-agreement key the TPM made and never releases), whose
// public half the fleet learns at enrolment, bound to the enrolled TPM by a
// second credential activation (SealingAttestation,
// ActivateSealingCredential). OpenSealed opens a value sealed to it
// (fleet/sealed: ECDH in the TPM, HKDF-SHA256, AES-256-GCM bound to the
// device ID, document version and name) straight into an encrypted record:
// the plaintext is never written in clear, and a value older than the one
// in use is refused as a rollback.
//
// Imported by system (which opens it), agent (the store it is handed),
// agent/provision (enrolment and renewal drive it) and
// fleet/rollout/rollouttest (the simulated phone of the rollout tests).
// It imports hal/tpm, bbolt and fleet/sealed (the sealed-value format,
// shared with the fleet server and importing nothing of hardphone's).
package credstore
