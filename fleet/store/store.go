package store

import (
	"context"
	"fmt"
	"time"
)

// Store is the fleet server's storage. Every method is safe for concurrent
// use; with pgstore, also across replicas sharing one database. Times are
// kept to the microsecond in UTC: a time read back equals the time written,
// truncated to the microsecond. Empty slices and maps read back as nil.
//
// Errors wrap the sentinels of errors.go with context; check them with
// errors.Is. A method that returns an error changed nothing.
//
// A later issue adds an entity as a group of methods here, one migration in
// each implementation and one section in storetest.
type Store interface {
	// ImportAllowList inserts or updates allow-list entries by EK hash, all
	// or none. Re-importing an identical entry changes nothing (its
	// ImportedAt stays); an entry whose serial, model or group changed is
	// updated. A serial held by another EK in the list, or twice in the
	// batch, is ErrExists; an EK twice in the batch or more than
	// MaxImportBatch entries is ErrInvalid.
	ImportAllowList(ctx context.Context, entries []AllowEntry) (ImportResult, error)
	// LookupAllowed returns the allow-list entry of a TPM, or ErrNotFound.
	LookupAllowed(ctx context.Context, ek EKHash) (AllowEntry, error)
	// ListAllowed returns a page of allow-list entries in EK hash order.
	ListAllowed(ctx context.Context, p PageRequest) (Page[AllowEntry], error)
	// RemoveAllowed removes a TPM from the allow-list, and its outstanding
	// challenges with it (an enrolment under way fails). A device already
	// enrolled stays enrolled: revoke or retire it for that.
	RemoveAllowed(ctx context.Context, ek EKHash) error

	// PutChallenge stores a credential-activation challenge for a TPM on
	// the allow-list (else ErrNotAllowed). Expired challenges of the TPM
	// are dropped first; more than MaxChallengesPerEK outstanding is
	// ErrLimit. A duplicate ID is ErrExists.
	PutChallenge(ctx context.Context, c Challenge) error
	// ConsumeChallenge removes the challenge and returns it, atomically:
	// of any number of concurrent callers (on any replica) exactly one
	// gets it; every other call, and every later one, gets ErrNotFound.
	// A challenge whose ExpiresAt is not after now is consumed and
	// ErrExpired returned with it (the record is returned too, for logs).
	ConsumeChallenge(ctx context.Context, id ChallengeID, now time.Time) (Challenge, error)
	// PurgeChallenges deletes every challenge expired at now and returns
	// how many.
	PurgeChallenges(ctx context.Context, now time.Time) (int, error)

	// CreateDevice records an enrolled device together with its first
	// certificate, in one transaction: there is never a device without a
	// certificate. The device's EK must be on the allow-list
	// (ErrNotAllowed). Enrolling a TPM that already has a device not
	// retired is refused with ErrExists, as is a serial held by such a
	// device: the caller decides what a second enrolment of the same TPM
	// means (GetDeviceByEK, then AddCert for a proven re-enrolment). d's
	// CurrentCertSerial, CertNotAfter and LastSeen are set from first and
	// EnrolledAt.
	CreateDevice(ctx context.Context, d Device, first Cert) error
	// GetDevice returns a device by ID, or ErrNotFound.
	GetDevice(ctx context.Context, id DeviceID) (Device, error)
	// GetDeviceByEK returns the device of a TPM that is not retired, or
	// ErrNotFound.
	GetDeviceByEK(ctx context.Context, ek EKHash) (Device, error)
	// ListDevices returns a page of devices in ID order.
	ListDevices(ctx context.Context, p PageRequest) (Page[Device], error)
	// SetDeviceState moves a device forward: enrolled -> revoked,
	// enrolled -> retired, revoked -> retired. In the same transaction
	// every certificate of the device not yet revoked is revoked at `at`
	// with reason, so a renewal racing with it either lands before (and is
	// revoked) or after (and is refused with ErrState). Setting the state
	// it already has changes nothing and returns nil; any other move is
	// ErrState. A retired device frees its EK and serial for a new
	// enrolment.
	SetDeviceState(ctx context.Context, id DeviceID, to DeviceState, reason RevocationReason, at time.Time) error

	// NextCertSerial returns a certificate serial never returned before by
	// this database, on any replica: a sequence number in the high 64 bits
	// and 64 random bits below.
	NextCertSerial(ctx context.Context) (CertSerial, error)
	// AddCert records a renewal certificate and makes it the device's
	// current one. The device must be enrolled (ErrState), the serial new
	// (ErrExists), and the device may hold at most MaxLiveCertsPerDevice
	// certificates live at c.NotBefore, c included (ErrLimit).
	AddCert(ctx context.Context, c Cert) error
	// GetCert returns a certificate by serial, or ErrNotFound.
	GetCert(ctx context.Context, serial CertSerial) (Cert, error)
	// ListDeviceCerts returns up to limit (1..MaxPageSize) certificates of
	// a device, newest NotBefore first, or ErrNotFound for no device.
	ListDeviceCerts(ctx context.Context, id DeviceID, limit int) ([]Cert, error)
	// RevokeCert revokes one certificate. Revoking it again is ErrState:
	// the first revocation time and reason stay, as RFC 5280 §5.3.2 wants
	// one invalidity story per serial.
	RevokeCert(ctx context.Context, serial CertSerial, reason RevocationReason, at time.Time) error
	// ListRevoked returns a page of revoked certificates whose NotAfter is
	// not before notAfterFrom, in serial order, for a CRL. RFC 5280 §3.3
	// keeps an entry on one regularly scheduled CRL past the certificate's
	// expiry, so the caller passes now minus its CRL period.
	ListRevoked(ctx context.Context, notAfterFrom time.Time, p PageRequest) (Page[Cert], error)
	// NextCRLNumber returns the next CRL number (RFC 5280 §5.2.3:
	// monotonically increasing), shared by all replicas; the first is 1.
	NextCRLNumber(ctx context.Context) (uint64, error)

	// PutReport stores a check-in report as the device's latest, drops its
	// reports beyond the newest MaxReportHistory, and moves the device's
	// LastSeen forward to r.ReceivedAt, in one transaction. ErrNotFound for
	// no device.
	PutReport(ctx context.Context, id DeviceID, r Report) error
	// LatestReport returns the device's last stored report, or ErrNotFound
	// (no device, or no report yet).
	LatestReport(ctx context.Context, id DeviceID) (Report, error)
	// ReportHistory returns up to limit (1..MaxReportHistory) reports of a
	// device, newest first; ErrNotFound for no device.
	ReportHistory(ctx context.Context, id DeviceID, limit int) ([]Report, error)

	// Setting returns a fleet setting, or ErrNotFound when it is not set.
	Setting(ctx context.Context, key SettingKey) (string, error)
	// SetSetting sets a fleet setting.
	SetSetting(ctx context.Context, key SettingKey, value string) error
	// DeleteSetting unsets a fleet setting; ErrNotFound when not set.
	DeleteSetting(ctx context.Context, key SettingKey) error

	// SetSealingKey records the sealing public key (DER
	// SubjectPublicKeyInfo) a re-enrolment proved for an enrolled device
	// (ErrState otherwise, ErrNotFound for no device).
	SetSealingKey(ctx context.Context, id DeviceID, spki []byte) error

	// GetAssignment returns a group's or a device's assignment, or
	// ErrNotFound.
	GetAssignment(ctx context.Context, s Scope) (Assignment, error)
	// PutAssignment writes a (Config, Firmware, UpdatedAt, UpdatedBy) if
	// the stored revision is prev (0: none stored yet), and returns it as
	// stored, with Revision prev+1; another revision is ErrState. A device
	// scope needs the device (ErrNotFound).
	PutAssignment(ctx context.Context, a Assignment, prev uint64) (Assignment, error)
	// DeleteAssignment removes an assignment; ErrNotFound when none.
	DeleteAssignment(ctx context.Context, s Scope) error

	// GetProvision returns a device's provisioning state, or ErrNotFound.
	GetProvision(ctx context.Context, id DeviceID) (Provision, error)
	// PutProvision writes p if the stored revision is prev (0: none yet)
	// and returns it with Rev prev+1; another revision is ErrState, so of
	// replicas racing on one device one wins and the others start again.
	// The device must exist (ErrNotFound).
	PutProvision(ctx context.Context, p Provision, prev uint64) (Provision, error)
	// ListProvisionDue returns up to limit (1..MaxPageSize) devices whose
	// DueAt is not after before, earliest first.
	ListProvisionDue(ctx context.Context, before time.Time, limit int) ([]DeviceID, error)

	// EventStore: devices' exported journals and the anomaly detector's
	// records (events.go).
	EventStore

	// Close releases the database. Calls after Close fail.
	Close() error
}

// MaxPageSize bounds every page and list a Store returns.
const MaxPageSize = 1000

// PageRequest asks for one page of a listing.
type PageRequest struct {
	// After is the Next of the previous page; "" starts at the beginning.
	// It is opaque to callers (a device ID, a hex EK hash or serial).
	After string
	// Limit is the page size, 1..MaxPageSize.
	Limit int
}

// Validate checks the limit; the cursor is checked by the listing that
// knows its type.
func (p PageRequest) Validate() error {
	if p.Limit < 1 || p.Limit > MaxPageSize {
		return fmt.Errorf("%w: page limit %d, want 1..%d", ErrInvalid, p.Limit, MaxPageSize)
	}
	if len(p.After) > 2*MaxSerialLen {
		return fmt.Errorf("%w: page cursor of %d bytes", ErrInvalid, len(p.After))
	}
	return nil
}

// Page is one page of a listing.
type Page[T any] struct {
	// Items holds at most the request's Limit records, in listing order.
	Items []T
	// Next is the After of the following page, "" when this is the last.
	Next string
}

// ValidLimit checks a plain list limit against max.
func ValidLimit(limit, max int) error {
	if limit < 1 || limit > max {
		return fmt.Errorf("%w: limit %d, want 1..%d", ErrInvalid, limit, max)
	}
	return nil
}
