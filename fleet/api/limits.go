package api

import "time"

// Size limits. A receiver reads at most the limit plus one byte and
// refuses a larger body with 413 (CodeTooLarge), before parsing.
const (
	// MaxRequestBody bounds every request body but an import: an
	// enrolment start carries an EK certificate (at most 8 KiB), a
	// TPMT_PUBLIC (512 bytes) and a CSR, base64 in JSON; a check-in
	// report is at most MaxReport.
	MaxRequestBody = 64 << 10
	// MaxReport bounds a check-in report's body (the signed bytes).
	MaxReport = 16 << 10
	// MaxImportBody bounds one allow-list import (MaxImportEntries
	// entries of about 200 bytes).
	MaxImportBody = 4 << 20
	// MaxImportEntries bounds one import request; hpctl sends a larger
	// manifest in batches.
	MaxImportEntries = 10000
	// MaxResponseBody bounds what a client reads of any answer: a device
	// with its 100 stored reports and certificates is the largest.
	MaxResponseBody = 8 << 20
	// MaxSignatureHeader bounds the base64 of a report signature (an
	// ASN.1 ECDSA P-256 signature is at most 72 bytes).
	MaxSignatureHeader = 256
	// MaxPageSize bounds a listing page.
	MaxPageSize = 1000
)

// MaxClockSkew is how far a report's SentAt may be from the server's
// clock; an older or later report is refused as stale.
const MaxClockSkew = 10 * time.Minute
