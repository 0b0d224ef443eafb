package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/hardphone/hardphone/fleet/api"
)

// Import sends allow-list entries, at most api.MaxImportEntries (one
// transaction on the server).
func (c *Client) Import(ctx context.Context, entries []api.AllowEntry) (*api.ImportResponse, error) {
	var out api.ImportResponse
	if err := c.postJSON(ctx, api.PathAdminAllowList, api.ImportRequest{Entries: entries}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func pageQuery(after string, limit int) url.Values {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

// AllowList returns one page of the allow-list.
func (c *Client) AllowList(ctx context.Context, after string, limit int) (*api.AllowListPage, error) {
	var out api.AllowListPage
	if err := c.do(ctx, http.MethodGet, api.PathAdminAllowList, pageQuery(after, limit), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Inventory returns one page of devices.
func (c *Client) Inventory(ctx context.Context, after string, limit int) (*api.InventoryPage, error) {
	var out api.InventoryPage
	if err := c.do(ctx, http.MethodGet, api.PathAdminDevices, pageQuery(after, limit), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Device returns one device with its certificates and reports.
func (c *Client) Device(ctx context.Context, id string) (*api.DeviceDetail, error) {
	if !api.ValidDeviceID(id) {
		return nil, fmt.Errorf("device ID %.40q: want dev- and 32 hex digits", id)
	}
	var out api.DeviceDetail
	if err := c.do(ctx, http.MethodGet, api.DevicePath(api.PathAdminDevice, id), nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Revoke revokes a device's certificates and stops its renewals.
func (c *Client) Revoke(ctx context.Context, id, reason string) (*api.Device, error) {
	return c.stateChange(ctx, api.PathAdminRevoke, id, reason)
}

// Retire decommissions a device: revoked, its TPM free to enrol anew, and
// told to wipe its credentials at its next check-in.
func (c *Client) Retire(ctx context.Context, id, reason string) (*api.Device, error) {
	return c.stateChange(ctx, api.PathAdminRetire, id, reason)
}

func (c *Client) stateChange(ctx context.Context, path, id, reason string) (*api.Device, error) {
	if !api.ValidDeviceID(id) {
		return nil, fmt.Errorf("device ID %.40q: want dev- and 32 hex digits", id)
	}
	var out api.Device
	if err := c.postJSON(ctx, api.DevicePath(path, id), api.StateChangeRequest{Reason: reason}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Setting reads a fleet setting.
func (c *Client) Setting(ctx context.Context, key string) (string, error) {
	var out api.SettingValue
	if err := c.do(ctx, http.MethodGet, api.SettingPath(url.PathEscape(key)), nil, nil, nil, &out); err != nil {
		return "", err
	}
	return out.Value, nil
}

// SetSetting sets a fleet setting.
func (c *Client) SetSetting(ctx context.Context, key, value string) error {
	b, err := json.Marshal(api.SettingValue{Value: value})
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPut, api.SettingPath(url.PathEscape(key)), nil, b, nil, nil)
}

// DeleteSetting unsets a fleet setting.
func (c *Client) DeleteSetting(ctx context.Context, key string) error {
	return c.do(ctx, http.MethodDelete, api.SettingPath(url.PathEscape(key)), nil, nil, nil, nil)
}

// Metrics returns the server's counters.
func (c *Client) Metrics(ctx context.Context) (*api.Metrics, error) {
	var out api.Metrics
	if err := c.do(ctx, http.MethodGet, api.PathAdminMetrics, nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
