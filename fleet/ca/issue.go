package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// DefaultDeviceLifetime is how long a device certificate is valid unless
// the server is told otherwise: short, so a lost phone drops off by itself.
const DefaultDeviceLifetime = 30 * 24 * time.Hour

// MaxDeviceLifetime bounds a device certificate's life.
const MaxDeviceLifetime = 366 * 24 * time.Hour

// Backdate is how far before the issuing time a certificate's NotBefore
// lies, for phones whose clock is a little behind.
const Backdate = 5 * time.Minute

// DeviceURIPrefix starts the URI subject alternative name of a device
// certificate; the device ID follows.
const DeviceURIPrefix = "urn:hardphone:device:"

// DeviceRequest is what the fleet knows about a device to certify. Every
// field comes from the fleet's records; nothing from the phone's CSR but
// the key, which the caller checked is the attested identity key.
type DeviceRequest struct {
	// Serial is the certificate serial: positive, at most 20 octets.
	Serial *big.Int
	// PublicKey is the identity key, ECDSA P-256.
	PublicKey crypto.PublicKey
	// DeviceID becomes the subject common name and the URI
	// DeviceURIPrefix+DeviceID; DeviceSerial the subject serialNumber;
	// Group the organizational unit.
	DeviceID, DeviceSerial, Group string
	// NotBefore and NotAfter bound the validity; NotAfter - NotBefore is
	// at most MaxDeviceLifetime and NotAfter not past the CA's.
	NotBefore, NotAfter time.Time
}

// IssueDevice signs a device certificate: subject and alternative name from
// the request, digitalSignature key usage, clientAuth extended key usage
// only, not a CA. It returns the DER.
func (c *CA) IssueDevice(r DeviceRequest) ([]byte, error) {
	if r.Serial == nil || r.Serial.Sign() <= 0 || r.Serial.BitLen() > 159 {
		// RFC 5280 §4.1.2.2: positive, at most 20 octets.
		return nil, fmt.Errorf("issue device certificate: %w: serial %v", errRequest, r.Serial)
	}
	k, ok := r.PublicKey.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("issue device certificate: %w: key %T, want ECDSA P-256", errRequest, r.PublicKey)
	}
	if r.DeviceID == "" || r.DeviceSerial == "" || r.Group == "" {
		return nil, fmt.Errorf("issue device certificate: %w: device ID, serial and group are required", errRequest)
	}
	if life := r.NotAfter.Sub(r.NotBefore); life <= 0 || life > MaxDeviceLifetime+Backdate {
		return nil, fmt.Errorf("issue device certificate: %w: lifetime %v, want (0, %v]", errRequest, life, MaxDeviceLifetime)
	}
	uri, err := url.Parse(DeviceURIPrefix + r.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("issue device certificate: %w: device ID %q", errRequest, r.DeviceID)
	}
	tmpl := &x509.Certificate{
		SerialNumber: r.Serial,
		Subject: pkix.Name{
			CommonName:         r.DeviceID,
			SerialNumber:       r.DeviceSerial,
			OrganizationalUnit: []string{r.Group},
			Organization:       c.cert.Subject.Organization,
		},
		URIs:                  []*url.URL{uri},
		NotBefore:             r.NotBefore,
		NotAfter:              r.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	return c.sign(tmpl, r.PublicKey)
}

// IssueServer signs a TLS server certificate for names and ips
// (serverAuth only).
func (c *CA) IssueServer(pub crypto.PublicKey, names []string, ips []net.IP, notBefore, notAfter time.Time) ([]byte, error) {
	if len(names) == 0 && len(ips) == 0 {
		return nil, fmt.Errorf("issue server certificate: %w: no name or address", errRequest)
	}
	cn := ""
	if len(names) > 0 {
		cn = names[0]
	} else {
		cn = ips[0].String()
	}
	serial, err := RandomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: c.cert.Subject.Organization},
		DNSNames:              names,
		IPAddresses:           ips,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	return c.sign(tmpl, pub)
}

// IssueAdmin signs an admin's TLS client certificate (clientAuth only),
// with the admin's name as common name.
func (c *CA) IssueAdmin(pub crypto.PublicKey, name string, notBefore, notAfter time.Time) ([]byte, error) {
	if name == "" {
		return nil, fmt.Errorf("issue admin certificate: %w: no name", errRequest)
	}
	serial, err := RandomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: c.cert.Subject.Organization},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	return c.sign(tmpl, pub)
}

func (c *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		return nil, fmt.Errorf("issue %q: %w (%v after %v)", tmpl.Subject, ErrOutlivesCA, tmpl.NotAfter, c.cert.NotAfter)
	}
	if tmpl.NotBefore.Before(c.cert.NotBefore) {
		tmpl.NotBefore = c.cert.NotBefore
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", tmpl.Subject, err)
	}
	return der, nil
}

// RandomSerial returns a positive 128-bit serial from crypto/rand, for the
// certificates the store does not number (server, admin, CA).
func RandomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
