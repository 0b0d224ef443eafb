package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Code classifies a refusal so a client can branch on it; Message is for
// people and logs.
type Code string

// Error codes, with the HTTP status each is sent with.
const (
	// CodeBadRequest (400): the body does not parse or fails validation.
	CodeBadRequest Code = "bad_request"
	// CodeTooLarge (413): the body is over its limit.
	CodeTooLarge Code = "too_large"
	// CodeUnauthenticated (401): no client certificate, or not one this
	// endpoint accepts (a device certificate on an admin path).
	CodeUnauthenticated Code = "unauthenticated"
	// CodeUntrustedEK (403): the EK certificate does not chain to a
	// manufacturer CA the fleet trusts.
	CodeUntrustedEK Code = "untrusted_ek"
	// CodeNotEK (403): a certificate from a trusted manufacturer that is
	// not an EK certificate, or an EK type that does not match.
	CodeNotEK Code = "not_ek"
	// CodeNotAllowed (403): the TPM is not on the fleet's allow-list.
	CodeNotAllowed Code = "not_allowed"
	// CodeIdentityKey (403): the identity key is not a TPM-resident key of
	// the accepted shape, or not the CSR's key.
	CodeIdentityKey Code = "identity_key"
	// CodeReplay (403): the challenge is unknown or was used already.
	CodeReplay Code = "replay"
	// CodeExpired (403): the challenge expired; start again.
	CodeExpired Code = "expired"
	// CodeActivation (403): the secret is not the one in the credential:
	// the identity key is not in the TPM that holds the EK.
	CodeActivation Code = "activation"
	// CodeRevoked (403): the device or the certificate is revoked.
	CodeRevoked Code = "revoked"
	// CodeRetired (403): the device was retired.
	CodeRetired Code = "retired"
	// CodePosture (403): renewal refused by the posture gate (firmware
	// below the fleet's minimum security version, lockdown drift, or no
	// report yet while a minimum is set).
	CodePosture Code = "posture"
	// CodeStale (409): a report older than the last one, or outside the
	// clock skew.
	CodeStale Code = "stale"
	// CodeNotFound (404): no such device or setting.
	CodeNotFound Code = "not_found"
	// CodeConflict (409): the request conflicts with a record (a TPM
	// enrolled with another identity key, a serial held by another TPM).
	CodeConflict Code = "conflict"
	// CodeLimit (429): a bound was reached (outstanding challenges of a
	// TPM, live certificates of a device, requests in flight).
	CodeLimit Code = "limit"
	// CodeForbidden (403): an authenticated device asked for what is not
	// its own (another device's director repository).
	CodeForbidden Code = "forbidden"
	// CodeSealingKey (403): the sealing key is not a TPM-resident key of
	// the accepted shape, or its credential was not activated.
	CodeSealingKey Code = "sealing_key"
	// CodeNotListed (409): firmware assigned that the image repository
	// does not list.
	CodeNotListed Code = "not_listed"
	// CodeNotConfigured (501): the server runs without the part asked for
	// (no director, no image repository, no registrar).
	CodeNotConfigured Code = "not_configured"
	// CodeInternal (500): the server failed; nothing was changed.
	CodeInternal Code = "internal"
	// CodeUnavailable (503): the store cannot be reached; retry.
	CodeUnavailable Code = "unavailable"
)

// Status returns the HTTP status a code is sent with.
func (c Code) Status() int {
	switch c {
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeUntrustedEK, CodeNotEK, CodeNotAllowed, CodeIdentityKey, CodeReplay, CodeExpired,
		CodeActivation, CodeRevoked, CodeRetired, CodePosture, CodeForbidden, CodeSealingKey:
		return http.StatusForbidden
	case CodeNotListed:
		return http.StatusConflict
	case CodeNotConfigured:
		return http.StatusNotImplemented
	case CodeNotFound:
		return http.StatusNotFound
	case CodeStale, CodeConflict:
		return http.StatusConflict
	case CodeLimit:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Retryable reports whether the same request may succeed later without a
// change on the client's side.
func (c Code) Retryable() bool {
	return c == CodeInternal || c == CodeUnavailable || c == CodeLimit
}

// Error is a refusal: the body of every non-2xx answer is
// {"error":{"code":...,"message":...}}.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Status is the HTTP status it came with (not on the wire).
	Status int `json:"-"`
}

// ErrorBody is the JSON of a refusal.
type ErrorBody struct {
	Error *Error `json:"error"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("fleet: %d %s: %s", e.Status, e.Code, e.Message)
}

// IsCode reports whether err is, or wraps, an *Error with code c.
func IsCode(err error, c Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == c
}

// MaxErrorMessage bounds an error message a server sends or a client
// keeps.
const MaxErrorMessage = 512
