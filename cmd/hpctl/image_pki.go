package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The development PKI of an image, made once in OUT/pki and reused by later
// builds, so bundles built later still verify against the keyring an
// earlier image ships. It is for emulation and tests only: a vendor passes
// --ca, --keyring, --signer-cert and --signer-key from its own PKI.
//
//	sip-ca        trust anchor for the registrar and issuer of the phone's
//	              identity certificate (its CSR) and of registrar.pem
//	registrar     TLS server certificate for 10.0.2.100 (QEMU's forward),
//	              127.0.0.1 and registrar.hardphone.test
//	update-ca     the keyring: root of the bundle signer
//	update-signer bundle signer: EKU codeSigning, KU digitalSignature, as
//	              RAUC's check-purpose=codesign wants

const devPKIValidity = 5 * 365 * 24 * time.Hour

// defaultPKI fills in the trust anchors and the signer the flags left
// unset, from the development PKI.
func (o *imageOptions) defaultPKI() error {
	dir := filepath.Join(o.out, "pki")
	needSIP := o.ca == ""
	needUpdate := o.keyring == "" && o.signerCert == ""
	if o.keyring == "" && o.signerCert != "" || o.keyring != "" && o.signerCert == "" {
		return usagef("image build: --keyring and --signer-cert/--signer-key go together (a signer only the keyring trusts)")
	}
	if !needSIP && !needUpdate {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("image build: pki: %w", err)
	}
	if needSIP {
		ca, err := loadOrMakeCA(dir, "sip-ca", "hardphone development SIP CA")
		if err != nil {
			return err
		}
		if err := ca.leafOnce(dir, "registrar", &x509.Certificate{
			Subject:     pkix.Name{CommonName: "registrar.hardphone.test"},
			DNSNames:    []string{"registrar.hardphone.test"},
			IPAddresses: []net.IP{net.ParseIP("10.0.2.100"), net.ParseIP("127.0.0.1")},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			return err
		}
		o.ca = filepath.Join(dir, "sip-ca.pem")
	}
	if needUpdate {
		ca, err := loadOrMakeCA(dir, "update-ca", "hardphone development update CA")
		if err != nil {
			return err
		}
		if err := ca.leafOnce(dir, "update-signer", &x509.Certificate{
			Subject:     pkix.Name{CommonName: "hardphone development bundle signer"},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		}); err != nil {
			return err
		}
		o.keyring = filepath.Join(dir, "update-ca.pem")
		o.signerCert, o.signerKey = filepath.Join(dir, "update-signer.pem"), filepath.Join(dir, "update-signer.key")
	}
	return nil
}

type devCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// loadOrMakeCA reads NAME.pem and NAME.key from dir, or makes them.
func loadOrMakeCA(dir, name, cn string) (*devCA, error) {
	certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if cb, err := os.ReadFile(certPath); err == nil {
		kb, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, fmt.Errorf("image build: pki %s: %w", name, err)
		}
		return parseCA(cb, kb, name)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:  pkix.Name{CommonName: cn, Organization: []string{"hardphone development"}},
		IsCA:     true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true,
	}
	der, err := sign(tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("image build: pki %s: %w", name, err)
	}
	if err := writePair(dir, name, der, key); err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &devCA{cert: cert, key: key}, nil
}

func parseCA(cb, kb []byte, name string) (*devCA, error) {
	cblk, _ := pem.Decode(cb)
	kblk, _ := pem.Decode(kb)
	if cblk == nil || kblk == nil {
		return nil, fmt.Errorf("image build: pki %s: not PEM", name)
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("image build: pki %s: %w", name, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("image build: pki %s: %w", name, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("image build: pki %s: not an ECDSA key", name)
	}
	return &devCA{cert: cert, key: key}, nil
}

// leafOnce issues NAME.pem/NAME.key under the CA unless they exist.
func (ca *devCA) leafOnce(dir, name string, tmpl *x509.Certificate) error {
	if _, err := os.Stat(filepath.Join(dir, name+".pem")); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("image build: pki %s: %w", name, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := sign(tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return fmt.Errorf("image build: pki %s: %w", name, err)
	}
	return writePair(dir, name, der, key)
}

func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, key *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(devPKIValidity)
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
}

func writePair(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return fmt.Errorf("image build: pki: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("image build: pki: %w", err)
	}
	return nil
}
