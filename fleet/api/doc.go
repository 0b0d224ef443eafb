// Package api is the fleet protocol on the wire: the versioned paths of
// hpfleet's HTTPS API, the JSON bodies phones, admins and the server
// exchange, the error shape, and the size limits both sides enforce.
//
// JSON over HTTPS (TLS 1.3, 1.2 at least, as crypto/policy says). Byte
// strings (certificates, CSRs, TPM structures) are DER or TPM wire format,
// base64 in JSON (encoding/json's []byte). Times are RFC 3339 in UTC.
//
//	POST /v1/enrol/start    no client certificate: the phone authenticates
//	                        by attestation (EnrolStartRequest → EnrolStartResponse)
//	POST /v1/enrol/finish   EnrolFinishRequest → CertificateResponse
//	POST /v1/renew          mutual TLS, device certificate: RenewRequest → CertificateResponse
//	POST /v1/checkin        mutual TLS, device certificate: a Report signed by
//	                        the identity key (SignatureHeader) → CheckInResponse
//	GET  /v1/crl            the device CA's CRL (DER), for anyone
//	GET  /v1/health         "ok" while the server can reach its store
//	     /v1/admin/...      mutual TLS, admin certificate (PathAdmin*)
//
// Threat: everything here is parsed from a network peer not yet trusted,
// so each body has a size limit (MaxRequestBody, MaxImportBody,
// MaxResponseBody) and each type a Validate the receiver runs before it
// acts; secrets (the activated credential) never print or log.
//
// Imported by fleet/server, fleet/director, fleet/rollout, fleet/console
// and cmd/hpfleet; by the phone's agent (check-in reports), agent/events
// (the journal export) and agent/provision; by fleet/client, cmd/hpctl and
// the test phone fleet/rollout/rollouttest. It imports nothing of
// hardphone's.
package api
