package policy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// tlsSuites are the TLS 1.2 suites allowed: ECDHE key exchange with an AEAD
// cipher only (no CBC, no static RSA). TLS 1.3 suites are all AEAD and are not
// configurable in crypto/tls.
var tlsSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// TLSSuites returns a copy of the allowed TLS 1.2 cipher suites.
func TLSSuites() []uint16 { return append([]uint16(nil), tlsSuites...) }

// TLSMinVersion is the lowest TLS version any hardphone channel speaks.
const TLSMinVersion = tls.VersionTLS12

// ClientTLS describes a TLS client channel (SIP to a registrar, later
// provisioning and syslog).
type ClientTLS struct {
	// Roots holds the trust anchors; must not be nil or empty.
	Roots *x509.CertPool
	// ServerName is the name or IP the server certificate must carry as a SAN.
	ServerName string
	// Certificate, when non-nil, is presented for mutual TLS. Its PrivateKey is a
	// crypto.Signer (a file key today, a TPM key later).
	Certificate *tls.Certificate
	// Time is the clock certificate validity is checked against: the phone's
	// time floor (crypto/timefloor), so a clock wound back cannot revive an
	// expired certificate. nil means time.Now.
	Time func() time.Time
	// GetCertificate, when non-nil (and Certificate nil), is asked for the
	// client certificate at each handshake that requests one, so a
	// certificate renewed meanwhile is the one presented.
	GetCertificate func() (*tls.Certificate, error)
}

// ClientConfig builds the tls.Config for a client channel. Verification is
// always on: there is deliberately no field that disables it.
func ClientConfig(c ClientTLS) (*tls.Config, error) {
	if c.Roots == nil {
		return nil, errors.New("tls client: no trust anchors configured")
	}
	if c.ServerName == "" {
		return nil, errors.New("tls client: no server name to verify")
	}
	cfg := &tls.Config{
		MinVersion:       TLSMinVersion,
		CipherSuites:     TLSSuites(),
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384},
		RootCAs:          c.Roots,
		ServerName:       c.ServerName,
		Time:             c.Time,
	}
	if c.Certificate != nil && c.GetCertificate != nil {
		return nil, errors.New("tls client: both Certificate and GetCertificate set")
	}
	if c.GetCertificate != nil {
		get := c.GetCertificate
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return get()
		}
	}
	if c.Certificate != nil {
		cert := *c.Certificate
		// GetClientCertificate rather than Certificates: the key is only asked to
		// sign when a server requests a certificate, and never when it does not.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		}
	}
	return cfg, nil
}

// ServerTLS describes a TLS server channel (the fleet server's HTTPS API).
type ServerTLS struct {
	// Certificate is the server's certificate and key; required.
	Certificate *tls.Certificate
	// ClientCAs, when non-nil, are the roots client certificates must
	// chain to. A client certificate that is sent is always verified
	// against them (with the clientAuth usage): an unverifiable one fails
	// the handshake.
	ClientCAs *x509.CertPool
	// RequireClientCert refuses clients that send no certificate. Without
	// it, a client may connect without one and the application decides
	// per request (enrolment before a phone has a certificate).
	RequireClientCert bool
}

// ServerConfig builds the tls.Config for a server channel: TLS 1.3, or 1.2
// with the policy's AEAD suites, and the policy's key exchange groups.
func ServerConfig(s ServerTLS) (*tls.Config, error) {
	if s.Certificate == nil {
		return nil, errors.New("tls server: no certificate configured")
	}
	if s.RequireClientCert && s.ClientCAs == nil {
		return nil, errors.New("tls server: client certificates required but no client CAs configured")
	}
	cfg := &tls.Config{
		MinVersion:       TLSMinVersion,
		CipherSuites:     TLSSuites(),
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384},
		Certificates:     []tls.Certificate{*s.Certificate},
	}
	if s.ClientCAs != nil {
		cfg.ClientCAs = s.ClientCAs
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if s.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}

// CheckTLSState verifies a completed handshake meets the policy. crypto/tls
// already enforces version and suites from the config; this is the belt for
// connections made by code we do not own (a library's dialer).
func CheckTLSState(st tls.ConnectionState) error {
	if st.Version < TLSMinVersion {
		return fmt.Errorf("tls version %#x below minimum %#x: %w", st.Version, TLSMinVersion, ErrWeakAlgorithm)
	}
	if st.Version == tls.VersionTLS12 {
		ok := false
		for _, s := range tlsSuites {
			if s == st.CipherSuite {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Errorf("tls suite %s not allowed: %w", tls.CipherSuiteName(st.CipherSuite), ErrWeakAlgorithm)
		}
	}
	if len(st.VerifiedChains) == 0 {
		return errors.New("tls peer certificate was not verified")
	}
	return nil
}
