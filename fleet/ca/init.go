package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names of a fleet PKI directory as Init lays it out. Keys are mode
// 0600, certificates 0644, the directory 0700.
const (
	DeviceCACertFile = "device-ca.crt"
	DeviceCAKeyFile  = "device-ca.key"
	ServerCACertFile = "server-ca.crt"
	ServerCAKeyFile  = "server-ca.key"
	ServerCertFile   = "server.crt"
	ServerKeyFile    = "server.key"
	AdminCACertFile  = "admin-ca.crt"
	AdminCAKeyFile   = "admin-ca.key"
	AdminCertFile    = "admin.crt"
	AdminKeyFile     = "admin.key"
)

// InitOptions says what Init makes.
type InitOptions struct {
	// Organization goes into every subject; required.
	Organization string
	// ServerNames and ServerIPs are the server certificate's names; at
	// least one. The phones pin the first name (or address).
	ServerNames []string
	ServerIPs   []net.IP
	// AdminName is the first admin certificate's common name; required.
	AdminName string
	// Now is the issuing time; zero means time.Now.
	Now time.Time
	// CALifetime (default 10 years) bounds the three CAs,
	// ServerLifetime and AdminLifetime (default 1 year) the leaves.
	CALifetime, ServerLifetime, AdminLifetime time.Duration
}

// Init creates a fleet PKI in dir (created 0700 if missing): a device CA,
// a server CA with the server's certificate, an admin CA with one admin
// certificate, ECDSA P-256 keys throughout. It refuses (ErrExists) when
// any of the files is already there, and writes nothing then. It is for
// tests and small fleets: a large one keeps its CA keys offline or in an
// HSM and loads only the device CA on the servers.
func Init(dir string, o InitOptions) error {
	if o.Organization == "" || o.AdminName == "" {
		return errors.New("fleet init: organization and admin name are required")
	}
	if len(o.ServerNames) == 0 && len(o.ServerIPs) == 0 {
		return errors.New("fleet init: the server needs a name or an address")
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	caLife := orDefault(o.CALifetime, 10*365*24*time.Hour)
	serverLife := orDefault(o.ServerLifetime, 365*24*time.Hour)
	adminLife := orDefault(o.AdminLifetime, 365*24*time.Hour)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("fleet init: %w", err)
	}
	all := []string{DeviceCACertFile, DeviceCAKeyFile, ServerCACertFile, ServerCAKeyFile, ServerCertFile,
		ServerKeyFile, AdminCACertFile, AdminCAKeyFile, AdminCertFile, AdminKeyFile}
	for _, name := range all {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("fleet init: %s: %w", filepath.Join(dir, name), ErrExists)
		}
	}
	notBefore := now.Add(-Backdate)
	files := map[string][]byte{}
	newCA := func(cn string, usage x509.KeyUsage, certFile, keyFile string) (*CA, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		serial, err := RandomSerial()
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial,
			Subject:               pkix.Name{CommonName: cn, Organization: []string{o.Organization}},
			NotBefore:             notBefore,
			NotAfter:              now.Add(caLife),
			KeyUsage:              usage,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLenZero:        true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, err
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		if err := addKey(files, keyFile, key); err != nil {
			return nil, err
		}
		files[certFile] = pemCert(der)
		return New(cert, key)
	}
	leaf := func(issue func(*ecdsa.PrivateKey) ([]byte, error), certFile, keyFile string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		der, err := issue(key)
		if err != nil {
			return err
		}
		files[certFile] = pemCert(der)
		return addKey(files, keyFile, key)
	}
	if _, err := newCA(o.Organization+" device CA", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, DeviceCACertFile, DeviceCAKeyFile); err != nil {
		return fmt.Errorf("fleet init: device CA: %w", err)
	}
	serverCA, err := newCA(o.Organization+" server CA", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, ServerCACertFile, ServerCAKeyFile)
	if err != nil {
		return fmt.Errorf("fleet init: server CA: %w", err)
	}
	adminCA, err := newCA(o.Organization+" admin CA", x509.KeyUsageCertSign|x509.KeyUsageCRLSign, AdminCACertFile, AdminCAKeyFile)
	if err != nil {
		return fmt.Errorf("fleet init: admin CA: %w", err)
	}
	if err := leaf(func(k *ecdsa.PrivateKey) ([]byte, error) {
		return serverCA.IssueServer(&k.PublicKey, o.ServerNames, o.ServerIPs, notBefore, now.Add(serverLife))
	}, ServerCertFile, ServerKeyFile); err != nil {
		return fmt.Errorf("fleet init: server certificate: %w", err)
	}
	if err := leaf(func(k *ecdsa.PrivateKey) ([]byte, error) {
		return adminCA.IssueAdmin(&k.PublicKey, o.AdminName, notBefore, now.Add(adminLife))
	}, AdminCertFile, AdminKeyFile); err != nil {
		return fmt.Errorf("fleet init: admin certificate: %w", err)
	}
	var written []string
	for _, name := range all {
		mode := os.FileMode(0o644)
		if filepath.Ext(name) == ".key" {
			mode = 0o600
		}
		path := filepath.Join(dir, name)
		if err := writeNew(path, files[name], mode); err != nil {
			for _, w := range written {
				// Undo: a half-made PKI would block the next Init.
				_ = os.Remove(w)
			}
			return fmt.Errorf("fleet init: %w", err)
		}
		written = append(written, path)
	}
	for _, b := range files {
		clear(b)
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func addKey(files map[string][]byte, name string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	files[name] = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	return nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeNew creates path exclusively with mode (never through a symlink,
// never over a file) and syncs it.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteCertificate writes a DER certificate as a new PEM file (0644).
func WriteCertificate(path string, der []byte) error { return writeNew(path, pemCert(der), 0o644) }
