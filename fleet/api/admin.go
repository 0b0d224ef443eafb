package api

import "time"

// AllowEntry is one device of a vendor manifest: the TPM's EK certificate
// hash is the key.
type AllowEntry struct {
	// EKSHA256 is the SHA-256 of the DER EK certificate, 64 hex digits.
	EKSHA256 string `json:"ek_sha256"`
	Serial   string `json:"serial"`
	Model    string `json:"model"`
	Group    string `json:"group"`
	// ImportedAt is set by the server in listings.
	ImportedAt time.Time `json:"imported_at,omitzero"`
}

// ImportRequest imports allow-list entries, all or none (at most
// MaxImportEntries).
type ImportRequest struct {
	Entries []AllowEntry `json:"entries"`
}

// ImportResponse counts what an import did.
type ImportResponse struct {
	Added     int `json:"added"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
}

// AllowListPage is one page of the allow-list.
type AllowListPage struct {
	Entries []AllowEntry `json:"entries"`
	// Next is the after= of the following page, "" at the end.
	Next string `json:"next,omitempty"`
}

// Device is an enrolled phone as the inventory shows it.
type Device struct {
	ID     string `json:"id"`
	Serial string `json:"serial"`
	Model  string `json:"model"`
	Group  string `json:"group"`
	// EKSHA256 is the TPM's EK certificate hash.
	EKSHA256 string `json:"ek_sha256"`
	// State is "enrolled", "revoked" or "retired".
	State          string    `json:"state"`
	EnrolledAt     time.Time `json:"enrolled_at"`
	StateChangedAt time.Time `json:"state_changed_at"`
	LastSeen       time.Time `json:"last_seen"`
	// CertSerial (32 hex digits) and CertNotAfter are those of the
	// certificate issued last.
	CertSerial   string    `json:"cert_serial"`
	CertNotAfter time.Time `json:"cert_not_after"`
	// Firmware and SecurityVersion come from the last report ("" and 0
	// before the first); LockdownOK too.
	Firmware        string `json:"firmware,omitempty"`
	SecurityVersion uint64 `json:"security_version,omitempty"`
	LockdownOK      *bool  `json:"lockdown_ok,omitempty"`
	// ConfigVersion, Stale and StaleRole come from the last report's
	// provisioning state: the configuration document the phone runs and
	// whether its director metadata expired (a freeze or a replay).
	ConfigVersion uint64 `json:"config_version,omitempty"`
	Stale         bool   `json:"stale,omitempty"`
	StaleRole     string `json:"stale_role,omitempty"`
	// SealingKey is true when the fleet holds the phone's sealing key
	// (it can be sent secrets).
	SealingKey bool `json:"sealing_key,omitempty"`
}

// InventoryPage is one page of devices.
type InventoryPage struct {
	Devices []Device `json:"devices"`
	Next    string   `json:"next,omitempty"`
}

// Cert is an issued certificate.
type Cert struct {
	Serial    string     `json:"serial"`
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// Reason is the RFC 5280 §5.3.1 reason code when revoked.
	Reason int `json:"reason,omitempty"`
}

// StoredReport is one check-in as the server kept it.
type StoredReport struct {
	ReceivedAt time.Time `json:"received_at"`
	Report     Report    `json:"report"`
	// Signed is the body exactly as the phone signed it.
	Signed []byte `json:"signed"`
}

// DeviceDetail is one device with its certificates and report history,
// newest first.
type DeviceDetail struct {
	Device  Device         `json:"device"`
	Certs   []Cert         `json:"certs"`
	Reports []StoredReport `json:"reports"`
}

// Revocation reasons an admin may give (RFC 5280 §5.3.1).
const (
	ReasonUnspecified          = "unspecified"
	ReasonKeyCompromise        = "key_compromise"
	ReasonAffiliationChanged   = "affiliation_changed"
	ReasonSuperseded           = "superseded"
	ReasonCessationOfOperation = "cessation_of_operation"
	ReasonPrivilegeWithdrawn   = "privilege_withdrawn"
)

// StateChangeRequest revokes or retires a device.
type StateChangeRequest struct {
	// Reason is one of the Reason constants; "" is ReasonUnspecified for
	// a revocation and ReasonCessationOfOperation for a retirement.
	Reason string `json:"reason,omitempty"`
}

// SettingValue is a fleet setting's value.
type SettingValue struct {
	Value string `json:"value"`
}

// Setting keys the server knows.
const (
	// SettingMinSecurityVersion is the lowest firmware security version
	// (decimal) a device may renew its certificate with.
	SettingMinSecurityVersion = "min_security_version"
)

// Metrics are the server's counters since it started (per replica).
type Metrics struct {
	// Counters by name: requests by endpoint ("requests.checkin"),
	// refusals by endpoint and code ("refused.enrol_start.not_allowed"),
	// successes ("enrolled", "renewed", "checked_in").
	Counters map[string]uint64 `json:"counters"`
}
