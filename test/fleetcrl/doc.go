// Package fleetcrl checks that a registrar fed by the fleet's CRL refuses a
// revoked phone: Kamailio's TLS module with the CRL hpfleet publishes, in a
// private network namespace. It skips under -short (make check).
//
// It has only test files besides this one; nothing imports it.
package fleetcrl
