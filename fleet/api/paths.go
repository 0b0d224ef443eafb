package api

// Version is the protocol version, the first segment of every path.
const Version = "v1"

// Paths of the API. Those with {id} or {key} take a device ID or a setting
// key in that segment (PathAdminDevice and its relatives), built with
// DevicePath and SettingPath.
const (
	PathEnrolStart  = "/v1/enrol/start"
	PathEnrolFinish = "/v1/enrol/finish"
	PathRenew       = "/v1/renew"
	PathCheckIn     = "/v1/checkin"
	PathCRL         = "/v1/crl"
	PathHealth      = "/v1/health"

	// PathAdminAllowList: POST imports allow-list entries (ImportRequest
	// → ImportResponse); GET lists them (?after=&limit=, AllowListPage).
	PathAdminAllowList = "/v1/admin/allowlist"
	// PathAdminDevices: GET lists devices (?after=&limit=, InventoryPage).
	PathAdminDevices = "/v1/admin/devices"
	// PathAdminDevice: GET shows one device with its certificates and
	// report history (DeviceDetail).
	PathAdminDevice = "/v1/admin/devices/{id}"
	// PathAdminRevoke and PathAdminRetire: POST (StateChangeRequest →
	// Device).
	PathAdminRevoke = "/v1/admin/devices/{id}/revoke"
	PathAdminRetire = "/v1/admin/devices/{id}/retire"
	// PathAdminSetting: GET, PUT (SettingValue) or DELETE one fleet
	// setting.
	PathAdminSetting = "/v1/admin/settings/{key}"
	// PathAdminMetrics: GET the server's counters (Metrics).
	PathAdminMetrics = "/v1/admin/metrics"

	// PathAdminConfig: GET, PUT (ConfigRequest → AssignmentResponse) or
	// DELETE the configuration document of a group ({kind} "group",
	// {name} the group) or of one device ("device", its ID).
	PathAdminConfig = "/v1/admin/config/{kind}/{name}"
	// PathAdminFirmware: GET, PUT (FirmwareRequest → AssignmentResponse)
	// or DELETE the firmware assigned to a group or a device.
	PathAdminFirmware = "/v1/admin/firmware/{kind}/{name}"
	// PathAdminProvision: GET what the director publishes for one device
	// (ProvisionStatus).
	PathAdminProvision = "/v1/admin/devices/{id}/provision"
	// PathAdminRotate: POST rotates the device's registrar passwords now
	// (→ ProvisionStatus).
	PathAdminRotate = "/v1/admin/devices/{id}/rotate"

	// PathDirector is a device's director repository: GET, mutual TLS
	// with that device's certificate only (any other is refused with
	// 403); ETag and If-None-Match (304).
	PathDirector = "/director/{id}/{file...}"
)

// DirectorBase is the base URL path of a device's director repository,
// with the trailing slash (agent/uptane's HTTPFetcher takes it).
func DirectorBase(id string) string { return "/director/" + id + "/" }

// ScopePath fills {kind} and {name} of PathAdminConfig or
// PathAdminFirmware.
func ScopePath(path, kind, name string) string {
	return fill(fill(path, "{kind}", kind), "{name}", name)
}

// DevicePath fills {id} of a device path (PathAdminDevice, PathAdminRevoke,
// PathAdminRetire). The caller passes a validated device ID.
func DevicePath(path, id string) string { return fill(path, "{id}", id) }

// SettingPath fills {key} of PathAdminSetting.
func SettingPath(key string) string { return fill(PathAdminSetting, "{key}", key) }

func fill(path, hole, v string) string {
	for i := 0; i+len(hole) <= len(path); i++ {
		if path[i:i+len(hole)] == hole {
			return path[:i] + v + path[i+len(hole):]
		}
	}
	return path
}

// ContentType is the media type of every JSON body.
const ContentType = "application/json"

// CRLContentType is the media type of PathCRL (RFC 5280 §4.2.1.13 names
// the DER encoding; the type is RFC 2585's).
const CRLContentType = "application/pkix-crl"

// SignatureHeader carries a check-in report's detached signature: the
// identity key's ASN.1 ECDSA signature over SHA-256 of the exact request
// body, base64 (standard, padded).
const SignatureHeader = "Hardphone-Signature"
