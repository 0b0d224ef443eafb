package consoleapi

import (
	"fmt"
	"net/http"
	"time"
)

// Paths of the JSON API. {id} is a device ID, an admin ID or a change ID.
// Every path but PathLogin needs "Authorization: Bearer TOKEN"; every
// path needs the admin's client certificate (an admin CA's, its common
// name the admin's login name).
const (
	Prefix              = "/v1/console/"
	PathLogin           = "/v1/console/login"
	PathLoginTOTP       = "/v1/console/login/totp"
	PathStepUp          = "/v1/console/stepup"
	PathLogout          = "/v1/console/logout"
	PathSession         = "/v1/console/session"
	PathEnrolTOTP       = "/v1/console/enrol/totp"
	PathEnrolTOTPFinish = "/v1/console/enrol/totp/confirm"
	PathDevices         = "/v1/console/devices"
	PathDeviceEvents    = "/v1/console/devices/{id}/events"
	PathAudit           = "/v1/console/audit"
	// PathAuditExport streams the whole log in fleet/audit's export
	// format (JSON lines), for `hpctl fleet audit verify`.
	PathAuditExport  = "/v1/console/audit/export"
	PathAdmins       = "/v1/console/admins"
	PathAdminRole    = "/v1/console/admins/{id}/role"
	PathAdminDisable = "/v1/console/admins/{id}/disable"
	PathApprovals    = "/v1/console/approvals"
	PathApprove      = "/v1/console/approvals/{id}/approve"
	PathRefuse       = "/v1/console/approvals/{id}/refuse"
)

// Bounds.
const (
	// MaxRequest bounds a request body.
	MaxRequest = 16 << 10
	// MaxResponse bounds a response body a client reads.
	MaxResponse = 4 << 20
)

// LoginRequest is POST PathLogin.
type LoginRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

// Stages of a login.
const (
	// StageSecondFactor: prove TOTP next (PathLoginTOTP).
	StageSecondFactor = "second_factor"
	// StageEnrol: the admin has no second factor yet: enrol TOTP
	// (PathEnrolTOTP, PathEnrolTOTPFinish).
	StageEnrol = "enrol"
)

// LoginResponse answers a right password: a pending token that can only
// prove (or enrol) a second factor.
type LoginResponse struct {
	Token string `json:"token"`
	Stage string `json:"stage"`
	// TOTP and WebAuthn say which factors the admin has; the CLI proves
	// TOTP only (a passkey needs a browser).
	TOTP     bool `json:"totp"`
	WebAuthn bool `json:"webauthn"`
}

// CodeRequest carries a TOTP code (PathLoginTOTP, PathStepUp,
// PathEnrolTOTPFinish).
type CodeRequest struct {
	Code string `json:"code"`
}

// TokenResponse is a new full session token; the one presented before is
// dead.
type TokenResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// Session is GET PathSession.
type Session struct {
	Name           string    `json:"name"`
	Role           string    `json:"role"`
	SecondFactorAt time.Time `json:"second_factor_at"`
	Expires        time.Time `json:"expires"`
	// Permissions are the role's permissions now.
	Permissions []string `json:"permissions"`
}

// TOTPEnrolment is POST PathEnrolTOTP's answer: the secret for the
// admin's authenticator app and its otpauth:// URI.
type TOTPEnrolment struct {
	Secret string `json:"secret"`
	URI    string `json:"uri"`
}

// Device is one inventory row.
type Device struct {
	ID           string    `json:"id"`
	Serial       string    `json:"serial"`
	Model        string    `json:"model"`
	Group        string    `json:"group"`
	State        string    `json:"state"`
	EnrolledAt   time.Time `json:"enrolled_at"`
	LastSeen     time.Time `json:"last_seen"`
	CertNotAfter time.Time `json:"cert_not_after"`
}

// DevicePage is GET PathDevices?after=CURSOR.
type DevicePage struct {
	Devices []Device `json:"devices"`
	Next    string   `json:"next,omitempty"`
}

// Event is a device security event.
type Event struct {
	Device   string    `json:"device"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Severity uint8     `json:"severity"`
	Count    uint64    `json:"count,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// AuditEntry is one audit log entry as the console shows it.
type AuditEntry struct {
	Index   int64             `json:"index"`
	Time    time.Time         `json:"time"`
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	Target  string            `json:"target,omitempty"`
	Outcome string            `json:"outcome"`
	Source  string            `json:"source,omitempty"`
	Refs    []string          `json:"approvals,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

// AuditPage is GET PathAudit?before=N: up to 100 entries below index N
// (default: the end), newest first, and the log's state.
type AuditPage struct {
	Size    int64        `json:"size"`
	Entries []AuditEntry `json:"entries"`
	// Checkpoint is the latest signed checkpoint's text; "" when none
	// is signed yet.
	Checkpoint string `json:"checkpoint,omitempty"`
	// Verified: the stored tree matches the latest checkpoint (its
	// signature, its size, its root). Problem says why not.
	Verified bool   `json:"verified"`
	Problem  string `json:"problem,omitempty"`
}

// Admin is one admin as listed.
type Admin struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	TOTP      bool      `json:"totp"`
	Passkeys  int       `json:"passkeys"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// ProposeAdmin is POST PathAdmins: a new admin, in effect once a second
// admin approves.
type ProposeAdmin struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Password string `json:"password"`
}

// ProposeRole is POST PathAdminRole.
type ProposeRole struct {
	Role string `json:"role"`
}

// Refusal is POST PathRefuse's body.
type Refusal struct {
	Reason string `json:"reason"`
}

// Change is a proposed change and what became of it.
type Change struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	ProposedBy string    `json:"proposed_by"`
	ProposedAt time.Time `json:"proposed_at"`
	Expires    time.Time `json:"expires"`
	Target     string    `json:"target"`
	TargetID   string    `json:"target_id"`
	FromRole   string    `json:"from_role,omitempty"`
	ToRole     string    `json:"to_role,omitempty"`
	State      string    `json:"state"`
	DecidedBy  string    `json:"decided_by,omitempty"`
	DecidedAt  time.Time `json:"decided_at,omitzero"`
	Reason     string    `json:"reason,omitempty"`
}

// Code classifies a refusal.
type Code string

// Error codes, with the HTTP status each is sent with.
const (
	CodeBadRequest Code = "bad_request" // 400
	CodeTooLarge   Code = "too_large"   // 413
	// CodeUnauthenticated (401): no or a dead session, a wrong password
	// or code, or no admin client certificate. Deliberately one code for
	// all: it says nothing about whether a name exists.
	CodeUnauthenticated Code = "unauthenticated"
	// CodeSecondFactor (401): the session is used from another network
	// or client: prove TOTP again (PathStepUp).
	CodeSecondFactor Code = "second_factor_required"
	// CodeStepUp (403): the action is privileged: prove TOTP again
	// (PathStepUp), then repeat it.
	CodeStepUp Code = "step_up_required"
	// CodeForbidden (403): the role does not hold the permission, or a
	// cross-site request.
	CodeForbidden Code = "forbidden"
	// CodeSamePerson (403): the approver proposed the change or is its
	// target.
	CodeSamePerson Code = "same_person"
	// CodeLockedOut (429): too many failures; RetryAfter says when.
	CodeLockedOut Code = "locked_out"
	CodeNotFound  Code = "not_found" // 404
	// CodeConflict (409): decided already, expired, stale, or a name
	// taken.
	CodeConflict Code = "conflict"
	// CodeLimit (429): too many pending changes.
	CodeLimit Code = "limit"
	// CodeNotAvailable (501): a part of the console not built yet.
	CodeNotAvailable Code = "not_available"
	CodeInternal     Code = "internal"    // 500
	CodeUnavailable  Code = "unavailable" // 503
)

// Status is the HTTP status a code is sent with.
func (c Code) Status() int {
	switch c {
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnauthenticated, CodeSecondFactor:
		return http.StatusUnauthorized
	case CodeStepUp, CodeForbidden, CodeSamePerson:
		return http.StatusForbidden
	case CodeLockedOut, CodeLimit:
		return http.StatusTooManyRequests
	case CodeNotFound:
		return http.StatusNotFound
	case CodeConflict:
		return http.StatusConflict
	case CodeNotAvailable:
		return http.StatusNotImplemented
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Error is every refusal's body: {"error": {...}}.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// RetryAfter is the lockout's remaining seconds (CodeLockedOut).
	RetryAfter int `json:"retry_after,omitempty"`
	// Status is the HTTP status it came with (client side only).
	Status int `json:"-"`
}

func (e *Error) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("console: %s: %s (retry after %ds)", e.Code, e.Message, e.RetryAfter)
	}
	return fmt.Sprintf("console: %s: %s", e.Code, e.Message)
}

// ErrorBody is the JSON envelope of an Error.
type ErrorBody struct {
	Error *Error `json:"error"`
}
