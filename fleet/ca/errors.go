package ca

import "errors"

// ErrKeyPermissions is returned when a CA key file may be read by anyone
// but its owner.
var ErrKeyPermissions = errors.New("CA key file is readable by group or others (want mode 0600)")

// ErrExists is returned by Init when the directory already holds a fleet
// PKI file: Init never overwrites a key.
var ErrExists = errors.New("fleet PKI file already exists")

// ErrOutlivesCA is returned when a certificate would be valid past its
// CA's expiry.
var ErrOutlivesCA = errors.New("certificate would outlive its CA")

var errRequest = errors.New("certificate request refused")
