package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"net/http"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/store"
)

// peer is an authenticated device: its TLS client certificate, verified
// by crypto/tls against the device CA, and the records behind it.
type peer struct {
	leaf   *x509.Certificate
	cert   store.Cert
	device store.Device
	key    *ecdsa.PublicKey // the device's identity key, parsed
}

// verifiedRoot returns the root of the client certificate's verified
// chain, or nil when the client sent none.
func verifiedRoot(r *http.Request) (leaf, root *x509.Certificate) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, nil
	}
	chain := r.TLS.VerifiedChains[0]
	return chain[0], chain[len(chain)-1]
}

// device authenticates a device request: a client certificate verified to
// the device CA, whose serial the store issued to a device, with the same
// bytes. The certificate's and device's states are the caller's to judge
// (a retired device may still check in to learn it must wipe).
func (s *Server) device(r *http.Request) (*peer, error) {
	leaf, root := verifiedRoot(r)
	if leaf == nil {
		return nil, refuse(api.CodeUnauthenticated, "a device certificate is required")
	}
	if !bytes.Equal(root.Raw, s.deviceCA.Certificate().Raw) {
		return nil, refuse(api.CodeUnauthenticated, "the client certificate is not a device certificate")
	}
	serial, err := store.CertSerialFromBigInt(leaf.SerialNumber)
	if err != nil {
		return nil, refuse(api.CodeUnauthenticated, "device certificate serial not issued by this fleet")
	}
	c, err := s.st.GetCert(r.Context(), serial)
	if errors.Is(err, store.ErrNotFound) {
		// Signed by our CA, unknown to our store: a store restored from
		// an old backup, or a CA key used elsewhere. Either way, no.
		return nil, refuse(api.CodeUnauthenticated, "device certificate %s unknown", serial).with("cert_serial", serial.String())
	}
	if err != nil {
		return nil, storeError("look up certificate", err)
	}
	if len(c.DER) > 0 && !bytes.Equal(c.DER, leaf.Raw) {
		return nil, refuse(api.CodeUnauthenticated, "device certificate %s differs from the one issued", serial).with("cert_serial", serial.String())
	}
	d, err := s.st.GetDevice(r.Context(), c.DeviceID)
	if err != nil {
		return nil, storeError("look up device", err)
	}
	pub, err := x509.ParsePKIXPublicKey(d.IdentityPublicKey)
	key, ok := pub.(*ecdsa.PublicKey)
	if err != nil || !ok {
		return nil, storeError("device key", errors.New("stored identity key is not ECDSA"))
	}
	if !key.Equal(leaf.PublicKey) {
		return nil, refuse(api.CodeUnauthenticated, "device certificate key is not the device's identity key").with("device", string(d.ID))
	}
	return &peer{leaf: leaf, cert: c, device: d, key: key}, nil
}

// live refuses a peer whose certificate or device is revoked or retired.
func (p *peer) live() error {
	switch p.device.State {
	case store.StateRetired:
		return refuse(api.CodeRetired, "device %s is retired", p.device.ID).with("device", string(p.device.ID))
	case store.StateRevoked:
		return refuse(api.CodeRevoked, "device %s is revoked", p.device.ID).with("device", string(p.device.ID))
	}
	if p.cert.RevokedAt != nil {
		return refuse(api.CodeRevoked, "certificate %s is revoked", p.cert.Serial).with("device", string(p.device.ID))
	}
	return nil
}

// adminHandler is an admin endpoint; admin is the certificate's subject.
type adminHandler func(w http.ResponseWriter, r *http.Request, admin string) error

// admin requires a client certificate verified to one of the admin CAs.
func (s *Server) admin(h adminHandler) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		leaf, root := verifiedRoot(r)
		if leaf == nil {
			return refuse(api.CodeUnauthenticated, "an admin certificate is required")
		}
		if s.isAdminCA(root) {
			return h(w, r, leaf.Subject.String())
		}
		return refuse(api.CodeUnauthenticated, "the client certificate is not an admin certificate")
	}
}

// isAdminCA reports whether root is one of the admin CAs.
func (s *Server) isAdminCA(root *x509.Certificate) bool {
	for _, c := range s.adminCAs {
		if root != nil && bytes.Equal(root.Raw, c.Raw) {
			return true
		}
	}
	return false
}
