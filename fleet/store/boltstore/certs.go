package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/store"
)

// NextCertSerial implements store.Store. The sequence of the certificate
// bucket is persisted with the transaction that advances it.
func (s *Store) NextCertSerial(ctx context.Context) (store.CertSerial, error) {
	var serial store.CertSerial
	err := s.update(ctx, func(tx *bolt.Tx) error {
		seq, err := tx.Bucket(bCert).NextSequence()
		if err != nil {
			return err
		}
		serial, err = store.NewCertSerial(seq)
		return err
	})
	if err != nil {
		return store.CertSerial{}, fmt.Errorf("next certificate serial: %w", err)
	}
	return serial, nil
}

// AddCert implements store.Store.
func (s *Store) AddCert(ctx context.Context, c store.Cert) error {
	c, err := store.ValidateNewCert(c)
	if err != nil {
		return fmt.Errorf("add certificate: %w", err)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		d, err := getDevice(tx, c.DeviceID)
		if err != nil {
			return fmt.Errorf("device %s: %w", c.DeviceID, err)
		}
		if d.State != store.StateEnrolled {
			return fmt.Errorf("%w: device %s is %s", store.ErrState, d.ID, d.State)
		}
		serials, err := deviceCerts(tx, d.ID)
		if err != nil {
			return err
		}
		live := 0
		for _, serial := range serials {
			old, err := decCert(serial[:], tx.Bucket(bCert).Get(serial[:]))
			if err != nil {
				return err
			}
			if old.RevokedAt == nil && old.NotAfter.After(c.NotBefore) {
				live++
			}
		}
		if live >= store.MaxLiveCertsPerDevice {
			return fmt.Errorf("%w: device %s has %d certificates live", store.ErrLimit, d.ID, live)
		}
		if err := putNewCert(tx, c); err != nil {
			return err
		}
		d.CurrentCertSerial, d.CertNotAfter = c.Serial, c.NotAfter
		return putDevice(tx, d)
	})
	if err != nil {
		return fmt.Errorf("add certificate %s: %w", c.Serial, err)
	}
	return nil
}

// GetCert implements store.Store.
func (s *Store) GetCert(ctx context.Context, serial store.CertSerial) (store.Cert, error) {
	var c store.Cert
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bCert).Get(serial[:])
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		c, err = decCert(serial[:], v)
		return err
	})
	if err != nil {
		return store.Cert{}, fmt.Errorf("get certificate %s: %w", serial, err)
	}
	return c, nil
}

// ListDeviceCerts implements store.Store.
func (s *Store) ListDeviceCerts(ctx context.Context, id store.DeviceID, limit int) ([]store.Cert, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	if err := store.ValidLimit(limit, store.MaxPageSize); err != nil {
		return nil, fmt.Errorf("list certificates of %s: %w", id, err)
	}
	var certs []store.Cert
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bDev).Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		certB := tx.Bucket(bCert)
		prefix := []byte(id)
		c := tx.Bucket(bCertDev).Cursor()
		// Newest first: walk back from just past the device's last key.
		k, _ := c.Seek(cat(prefix, []byte{0xff}))
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(certs) < limit; k, _ = c.Prev() {
			serial := k[len(prefix)+8:]
			cert, err := decCert(serial, certB.Get(serial))
			if err != nil {
				return err
			}
			certs = append(certs, cert)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list certificates of %s: %w", id, err)
	}
	return certs, nil
}

// RevokeCert implements store.Store.
func (s *Store) RevokeCert(ctx context.Context, serial store.CertSerial, reason store.RevocationReason, at time.Time) error {
	at, err := store.ValidateRevocation(reason, at)
	if err != nil {
		return fmt.Errorf("revoke certificate %s: %w", serial, err)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		done, err := revokeCert(tx, serial, reason, at)
		if err != nil {
			return err
		}
		if !done {
			return fmt.Errorf("%w: already revoked", store.ErrState)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke certificate %s: %w", serial, err)
	}
	return nil
}

// ListRevoked implements store.Store.
func (s *Store) ListRevoked(ctx context.Context, notAfterFrom time.Time, p store.PageRequest) (store.Page[store.Cert], error) {
	var page store.Page[store.Cert]
	if err := p.Validate(); err != nil {
		return page, fmt.Errorf("list revoked: %w", err)
	}
	if err := store.CheckTime("not_after_from", notAfterFrom); err != nil {
		return page, fmt.Errorf("list revoked: %w", err)
	}
	from := store.NormTime(notAfterFrom)
	after, start, err := store.ParseCertCursor(p.After)
	if err != nil {
		return page, fmt.Errorf("list revoked: %w", err)
	}
	err = s.view(ctx, func(tx *bolt.Tx) error {
		certB := tx.Bucket(bCert)
		c := tx.Bucket(bCertRevoked).Cursor()
		k, _ := c.First()
		if !start {
			k, _ = c.Seek(after[:])
			if k != nil && bytes.Equal(k, after[:]) {
				k, _ = c.Next()
			}
		}
		for ; k != nil; k, _ = c.Next() {
			cert, err := decCert(k, certB.Get(k))
			if err != nil {
				return err
			}
			if cert.NotAfter.Before(from) {
				continue
			}
			if len(page.Items) == p.Limit {
				page.Next = page.Items[len(page.Items)-1].Serial.String()
				return nil
			}
			page.Items = append(page.Items, cert)
		}
		return nil
	})
	if err != nil {
		return store.Page[store.Cert]{}, fmt.Errorf("list revoked: %w", err)
	}
	return page, nil
}

// NextCRLNumber implements store.Store.
func (s *Store) NextCRLNumber(ctx context.Context) (uint64, error) {
	var n uint64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		var err error
		n, err = tx.Bucket(bCRL).NextSequence()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("next CRL number: %w", err)
	}
	return n, nil
}

// putNewCert records a certificate not seen before, with its index entry.
func putNewCert(tx *bolt.Tx, c store.Cert) error {
	certB := tx.Bucket(bCert)
	if certB.Get(c.Serial[:]) != nil {
		return fmt.Errorf("%w: certificate serial %s", store.ErrExists, c.Serial)
	}
	v, err := encCert(c)
	if err != nil {
		return err
	}
	if err := certB.Put(c.Serial[:], v); err != nil {
		return err
	}
	return tx.Bucket(bCertDev).Put(cat([]byte(c.DeviceID), micros(c.NotBefore), c.Serial[:]), nil)
}

// deviceCerts lists the serials of a device's certificates.
func deviceCerts(tx *bolt.Tx, id store.DeviceID) ([]store.CertSerial, error) {
	var serials []store.CertSerial
	prefix := []byte(id)
	c := tx.Bucket(bCertDev).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		var s store.CertSerial
		if len(k) != len(prefix)+8+len(s) {
			return nil, fmt.Errorf("certificate index key of %d bytes", len(k))
		}
		copy(s[:], k[len(prefix)+8:])
		serials = append(serials, s)
	}
	return serials, nil
}

// revokeCert revokes a certificate unless it is already; done reports
// whether it changed.
func revokeCert(tx *bolt.Tx, serial store.CertSerial, reason store.RevocationReason, at time.Time) (done bool, err error) {
	certB := tx.Bucket(bCert)
	v := certB.Get(serial[:])
	if v == nil {
		return false, store.ErrNotFound
	}
	c, err := decCert(serial[:], v)
	if err != nil {
		return false, err
	}
	if c.RevokedAt != nil {
		return false, nil
	}
	c.RevokedAt, c.Reason = &at, reason
	if v, err = encCert(c); err != nil {
		return false, err
	}
	if err := certB.Put(serial[:], v); err != nil {
		return false, err
	}
	return true, tx.Bucket(bCertRevoked).Put(serial[:], nil)
}
