package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/store"
)

// CreateDevice implements store.Store.
func (s *Store) CreateDevice(ctx context.Context, d store.Device, first store.Cert) error {
	d, first, err := store.ValidateNewDevice(d, first)
	if err != nil {
		return fmt.Errorf("create device: %w", err)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bAllow).Get(d.EK[:]) == nil {
			return fmt.Errorf("%w: EK %s", store.ErrNotAllowed, d.EK)
		}
		dev := tx.Bucket(bDev)
		if dev.Get([]byte(d.ID)) != nil {
			return fmt.Errorf("%w: device ID %s", store.ErrExists, d.ID)
		}
		byEK, bySerial := tx.Bucket(bDevEK), tx.Bucket(bDevSerial)
		if id := byEK.Get(d.EK[:]); id != nil {
			return fmt.Errorf("%w: EK %s is enrolled as device %s", store.ErrExists, d.EK, id)
		}
		if id := bySerial.Get([]byte(d.Serial)); id != nil {
			return fmt.Errorf("%w: serial %q is enrolled as device %s", store.ErrExists, d.Serial, id)
		}
		if err := putNewCert(tx, first); err != nil {
			return err
		}
		if err := putDevice(tx, d); err != nil {
			return err
		}
		if err := byEK.Put(d.EK[:], []byte(d.ID)); err != nil {
			return err
		}
		return bySerial.Put([]byte(d.Serial), []byte(d.ID))
	})
	if err != nil {
		return fmt.Errorf("create device %s: %w", d.ID, err)
	}
	return nil
}

// GetDevice implements store.Store.
func (s *Store) GetDevice(ctx context.Context, id store.DeviceID) (store.Device, error) {
	if err := id.Validate(); err != nil {
		return store.Device{}, fmt.Errorf("get device: %w", err)
	}
	var d store.Device
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		d, err = getDevice(tx, id)
		return err
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("get device %s: %w", id, err)
	}
	return d, nil
}

// GetDeviceByEK implements store.Store.
func (s *Store) GetDeviceByEK(ctx context.Context, ek store.EKHash) (store.Device, error) {
	var d store.Device
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id := tx.Bucket(bDevEK).Get(ek[:])
		if id == nil {
			return store.ErrNotFound
		}
		var err error
		d, err = getDevice(tx, store.DeviceID(id))
		return err
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("get device by EK %s: %w", ek, err)
	}
	return d, nil
}

// ListDevices implements store.Store.
func (s *Store) ListDevices(ctx context.Context, p store.PageRequest) (store.Page[store.Device], error) {
	var page store.Page[store.Device]
	if err := p.Validate(); err != nil {
		return page, fmt.Errorf("list devices: %w", err)
	}
	after, err := store.ParseDeviceCursor(p.After)
	if err != nil {
		return page, fmt.Errorf("list devices: %w", err)
	}
	err = s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bDev).Cursor()
		k, v := c.First()
		if after != "" {
			k, v = c.Seek([]byte(after))
			if k != nil && bytes.Equal(k, []byte(after)) {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			if len(page.Items) == p.Limit {
				page.Next = string(page.Items[len(page.Items)-1].ID)
				return nil
			}
			d, err := decDev(k, v)
			if err != nil {
				return err
			}
			page.Items = append(page.Items, d)
		}
		return nil
	})
	if err != nil {
		return store.Page[store.Device]{}, fmt.Errorf("list devices: %w", err)
	}
	return page, nil
}

// SetDeviceState implements store.Store.
func (s *Store) SetDeviceState(ctx context.Context, id store.DeviceID, to store.DeviceState, reason store.RevocationReason, at time.Time) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("set device state: %w", err)
	}
	if err := to.Validate(); err != nil {
		return fmt.Errorf("set device %s state: %w", id, err)
	}
	at, err := store.ValidateRevocation(reason, at)
	if err != nil {
		return fmt.Errorf("set device %s state: %w", id, err)
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		d, err := getDevice(tx, id)
		if err != nil {
			return err
		}
		if d.State == to {
			return nil
		}
		if !d.State.CanMove(to) {
			return fmt.Errorf("%w: device is %s, cannot become %s", store.ErrState, d.State, to)
		}
		// Every certificate of the device not yet revoked is revoked in
		// this transaction: a renewal serialised before it is caught
		// here, one after it finds the device not enrolled.
		serials, err := deviceCerts(tx, id)
		if err != nil {
			return err
		}
		for _, serial := range serials {
			if _, err := revokeCert(tx, serial, reason, at); err != nil {
				return err
			}
		}
		if to == store.StateRetired {
			// A retired device frees its TPM and serial for a new
			// enrolment.
			if err := tx.Bucket(bDevEK).Delete(d.EK[:]); err != nil {
				return err
			}
			if err := tx.Bucket(bDevSerial).Delete([]byte(d.Serial)); err != nil {
				return err
			}
		}
		d.State, d.StateChangedAt = to, at
		return putDevice(tx, d)
	})
	if err != nil {
		return fmt.Errorf("set device %s state %s: %w", id, to, err)
	}
	return nil
}

func getDevice(tx *bolt.Tx, id store.DeviceID) (store.Device, error) {
	v := tx.Bucket(bDev).Get([]byte(id))
	if v == nil {
		return store.Device{}, store.ErrNotFound
	}
	return decDev([]byte(id), v)
}

func putDevice(tx *bolt.Tx, d store.Device) error {
	v, err := encDev(d)
	if err != nil {
		return err
	}
	return tx.Bucket(bDev).Put([]byte(d.ID), v)
}
