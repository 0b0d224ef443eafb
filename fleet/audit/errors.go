package audit

import "errors"

// Sentinel errors callers branch on.
var (
	// ErrInvalid: an entry, a checkpoint text, an export line or an
	// argument is malformed or out of its bounds; nothing was written.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: no record, checkpoint or hash at that index or size.
	ErrNotFound = errors.New("not found")
	// ErrBadSignature: a checkpoint or a seal is not signed by a trusted
	// key (a forged checkpoint, or one from another log).
	ErrBadSignature = errors.New("signature not verified by a trusted key")
	// ErrTampered: the stored log does not match a checkpoint it signed
	// before, or a proof does not verify.
	ErrTampered = errors.New("audit log tampered with")
	// ErrEmpty: the log has no entry yet (no checkpoint of an empty tree
	// is signed).
	ErrEmpty = errors.New("audit log is empty")
	// ErrKeyPermissions: a private key file is readable or writable by
	// group or others, or is not a regular file.
	ErrKeyPermissions = errors.New("private key file permissions too open")
	// ErrSchemaTooNew: the database was written by a newer release.
	ErrSchemaTooNew = errors.New("audit schema newer than this binary")
)
