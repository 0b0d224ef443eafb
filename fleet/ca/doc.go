// Package ca is the fleet's certificate authorities: the device CA that
// issues the phones' short-lived client certificates and signs the CRL, the
// server CA that issues hpfleet's TLS certificate, and the admin CA that
// issues the admins' client certificates. Init lays a fleet's PKI out in a
// directory (`hpctl fleet init`); Load reads one CA back.
//
// Threat: the device CA key is what lets anyone act as any phone. Its file
// is refused unless only its owner can read it (mode 0600 or stricter,
// checked on the open file), it is never logged or printed (CA.LogValue
// shows the subject only), and it signs only what this package builds: a
// device certificate takes its subject and alternative name from the
// fleet's device record, never from the phone's CSR, carries the
// clientAuth usage only, and cannot outlive the CA. Serials come from the
// caller (the store's NextCertSerial: unique across replicas, 64 random
// bits).
//
// Imported by fleet/server, cmd/hpfleet and cmd/hpctl (fleet init). It
// imports nothing of hardphone's: the caller converts store records.
package ca
