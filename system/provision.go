package system

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/hardphone/hardphone/agent/provision"
)

// ErrNoProvisioning: the config has no [provision] table.
var ErrNoProvisioning = errors.New("the config names no fleet ([provision] server)")

// maxHintFile bounds the DHCP hint file: one "HOST:PORT" line.
const maxHintFile = 512

// liveIdentity is the phone's TLS identity as the credential store holds
// it now: read once, and again whenever provisioning stores a new
// certificate.
type liveIdentity struct {
	creds *Credentials
	mu    sync.Mutex
	cur   *tls.Certificate // nil: not read yet, or none
}

// get returns the current certificate, or an empty one while the store
// holds none (the handshake then offers no certificate, and the registrar
// refuses: the phone is not enrolled yet).
func (l *liveIdentity) get() (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil {
		c, err := l.creds.Identity()
		if err != nil {
			return &tls.Certificate{}, nil
		}
		l.cur = c
	}
	return l.cur, nil
}

// reload forgets the cached certificate: the next handshake reads the
// store again.
func (l *liveIdentity) reload() {
	l.mu.Lock()
	l.cur = nil
	l.mu.Unlock()
}

// Provisioner builds the fleet client for the config's [provision] table
// (once): the credential store's TPM identity, the server CA and name the
// image pins, the fleet's device CA, the DHCP hint when the DHCP client
// wrote one, and the time floor as its clock. ErrNoProvisioning without
// the table.
func (p *Phone) Provisioner() (*provision.Client, error) {
	if p.prov != nil {
		return p.prov, nil
	}
	pc := p.cfg.Provision
	if pc.Server == "" {
		return nil, ErrNoProvisioning
	}
	creds, err := p.Credentials()
	if err != nil {
		return nil, err
	}
	roots, err := loadRoots(pc.ServerCA)
	if err != nil {
		return nil, fmt.Errorf("provision.server_ca: %w", err)
	}
	deviceCA, err := loadOneCert(pc.DeviceCA)
	if err != nil {
		return nil, fmt.Errorf("provision.device_ca: %w", err)
	}
	hint, err := readHint(pc.HintFile)
	if err != nil {
		p.log.Warn("DHCP fleet hint ignored", "file", pc.HintFile, "error", err)
	}
	floor, err := p.TimeFloor()
	if err != nil {
		return nil, err
	}
	p.ident = &liveIdentity{creds: creds}
	c, err := provision.New(provision.Config{Credentials: creds.Store, ServerURL: pc.Server, ServerName: pc.ServerName,
		ServerRoots: roots, DeviceCA: deviceCA, AddressHint: hint, Wipe: creds.Store.Wipe},
		provision.WithLogger(p.log), provision.WithClock(floor.Now), provision.WithInterval(pc.CheckInInterval),
		provision.WithOnCertificate(p.ident.reload))
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	p.prov = c
	return c, nil
}

// loadOneCert reads the first certificate of a PEM file.
func loadOneCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: no certificate", path)
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}

// readHint reads the DHCP client's fleet address hint ("HOST:PORT"), ""
// when there is no file. It is only where to dial: the server must still
// prove the pinned name.
func readHint(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	b := make([]byte, maxHintFile+1)
	n, _ := f.Read(b)
	if n > maxHintFile {
		return "", fmt.Errorf("longer than %d bytes", maxHintFile)
	}
	hint := strings.TrimSpace(string(b[:n]))
	if hint == "" {
		return "", nil
	}
	if host, port, err := net.SplitHostPort(hint); err != nil || host == "" || port == "" || strings.ContainsAny(hint, " \t\r\n/") {
		return "", fmt.Errorf("%q: want HOST:PORT", hint)
	}
	return hint, nil
}
