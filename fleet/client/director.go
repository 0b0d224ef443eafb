package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/hardphone/hardphone/fleet/api"
)

func checkScope(kind, name string) error {
	if kind != api.ScopeGroup && kind != api.ScopeDevice {
		return fmt.Errorf("scope kind %.16q, want %s or %s", kind, api.ScopeGroup, api.ScopeDevice)
	}
	if name == "" || len(name) > 64 || url.PathEscape(name) != name {
		return fmt.Errorf("scope name %.64q: want a group name or a device ID", name)
	}
	return nil
}

func (c *Client) assignment(ctx context.Context, method, path, kind, name string, in any) (*api.AssignmentResponse, error) {
	if err := checkScope(kind, name); err != nil {
		return nil, err
	}
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = b
	}
	var out api.AssignmentResponse
	if err := c.do(ctx, method, api.ScopePath(path, kind, name), nil, body, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetConfig sets a group's (kind api.ScopeGroup) or a device's
// (api.ScopeDevice) configuration document; the server refuses one that
// does not validate, with the reason.
func (c *Client) SetConfig(ctx context.Context, kind, name string, toml []byte) (*api.AssignmentResponse, error) {
	return c.assignment(ctx, http.MethodPut, api.PathAdminConfig, kind, name, api.ConfigRequest{TOML: string(toml)})
}

// Config returns a scope's assignment (its document and firmware).
func (c *Client) Config(ctx context.Context, kind, name string) (*api.AssignmentResponse, error) {
	return c.assignment(ctx, http.MethodGet, api.PathAdminConfig, kind, name, nil)
}

// DeleteConfig removes a scope's configuration document.
func (c *Client) DeleteConfig(ctx context.Context, kind, name string) (*api.AssignmentResponse, error) {
	return c.assignment(ctx, http.MethodDelete, api.PathAdminConfig, kind, name, nil)
}

// AssignFirmware assigns an image repository target to a scope.
func (c *Client) AssignFirmware(ctx context.Context, kind, name, target string) (*api.AssignmentResponse, error) {
	return c.assignment(ctx, http.MethodPut, api.PathAdminFirmware, kind, name, api.FirmwareRequest{Target: target})
}

// ClearFirmware removes a scope's firmware assignment.
func (c *Client) ClearFirmware(ctx context.Context, kind, name string) (*api.AssignmentResponse, error) {
	return c.assignment(ctx, http.MethodDelete, api.PathAdminFirmware, kind, name, nil)
}

// Provision returns what the director publishes for a device.
func (c *Client) Provision(ctx context.Context, id string) (*api.ProvisionStatus, error) {
	if !api.ValidDeviceID(id) {
		return nil, fmt.Errorf("device ID %.40q: want dev- and 32 hex digits", id)
	}
	var out api.ProvisionStatus
	if err := c.do(ctx, http.MethodGet, api.DevicePath(api.PathAdminProvision, id), nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rotate has the fleet give a device's accounts new passwords now.
func (c *Client) Rotate(ctx context.Context, id string) (*api.ProvisionStatus, error) {
	if !api.ValidDeviceID(id) {
		return nil, fmt.Errorf("device ID %.40q: want dev- and 32 hex digits", id)
	}
	var out api.ProvisionStatus
	if err := c.do(ctx, http.MethodPost, api.DevicePath(api.PathAdminRotate, id), nil, []byte("{}"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DirectorURL is the base URL of a device's director repository on this
// server (with the trailing slash), for agent/uptane's HTTPFetcher over
// HTTPClient.
func (c *Client) DirectorURL(id string) (string, error) {
	if !api.ValidDeviceID(id) {
		return "", fmt.Errorf("device ID %.40q: want dev- and 32 hex digits", id)
	}
	u := *c.base
	u.Path = api.DirectorBase(id)
	return u.String(), nil
}

// HTTPClient is the client's mutual-TLS HTTP client (the server pinned,
// the device certificate presented, no redirects), for fetchers that
// need one.
func (c *Client) HTTPClient() *http.Client { return c.hc }
