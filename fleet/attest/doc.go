// Package attest is the fleet's half of attested enrolment: it decides
// whether a phone's identity key lives in a genuine TPM, without trusting
// anything the phone says that the TPM or its manufacturer did not vouch
// for.
//
// Three checks, each run on the server:
//
//   - VerifyEK: the phone's EK certificate chains to a manufacturer CA the
//     fleet trusts and really is an EK certificate (TCG EK Credential
//     Profile: the tcg-kp-EKCertificate extended key usage, the TPM
//     manufacturer, model and version in a critical subject alternative
//     name, the key usage an EK of that type has).
//   - CheckIdentityKey: the identity key's TPMT_PUBLIC says what the phone's
//     credential store makes: an ECC P-256 signing key the TPM generated and
//     can never release or duplicate (fixedTPM, fixedParent,
//     sensitiveDataOrigin), no policy, and the same point as the key the
//     phone uses for TLS. It returns the key's TPM Name.
//   - MakeCredential: a TPM2_MakeCredential done in software (TPM 2.0 Part 1
//     §24 "Credential Protection") to the certified EK for that Name. Only
//     the TPM holding that EK can open it, and it does so only while an
//     object with exactly that Name is loaded in it, so the phone that
//     returns the secret proves the key is in that TPM.
//
// Threat: a client that claims a TPM-resident identity it does not have: a
// software key dressed up with TPM attributes, a key that lives in another
// TPM than the certified EK, an EK certificate from a CA the fleet does not
// trust or a manufacturer certificate that is not for an EK, a public area
// crafted to crash or confuse the parser. Replay is the caller's part: a
// fresh random secret per enrolment attempt, compared in constant time and
// used once.
//
// Imported by fleet/server only. It imports go-tpm's tpm2 package
// for its credential KDFs and nothing of hardphone's; the phone side lives
// in hal/tpm and crypto/credstore.
package attest
