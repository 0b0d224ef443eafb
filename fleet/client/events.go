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

// PushEvents sends a batch of the phone's journal records (and calls) over
// mutual TLS with the device certificate, and returns the fleet's cursor
// after it.
func (c *Client) PushEvents(ctx context.Context, b api.EventBatch) (*api.EventAck, error) {
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("push events: %w", err)
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("push events: %w", err)
	}
	if len(body) > api.MaxEventBatchBody {
		return nil, fmt.Errorf("push events: batch of %d bytes, at most %d", len(body), api.MaxEventBatchBody)
	}
	var out api.EventAck
	if err := c.do(ctx, http.MethodPost, api.PathEvents, nil, body, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EventCursor asks the fleet where its copy of the phone's journal ends.
func (c *Client) EventCursor(ctx context.Context) (*api.EventAck, error) {
	var out api.EventAck
	if err := c.do(ctx, http.MethodGet, api.PathEvents, nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FindingQuery selects findings for Findings.
type FindingQuery struct {
	DeviceID, Rule, Before string
	Limit                  int
}

// Findings returns a page of the anomaly detector's findings (admin).
func (c *Client) Findings(ctx context.Context, q FindingQuery) (*api.FindingsPage, error) {
	v := url.Values{}
	if q.DeviceID != "" {
		if !api.ValidDeviceID(q.DeviceID) {
			return nil, fmt.Errorf("device ID %.40q: want dev- and 32 hex digits", q.DeviceID)
		}
		v.Set("device", q.DeviceID)
	}
	if q.Rule != "" {
		v.Set("rule", q.Rule)
	}
	if q.Before != "" {
		v.Set("before", q.Before)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out api.FindingsPage
	if err := c.do(ctx, http.MethodGet, api.PathAdminFindings, v, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeviceEvents returns a device's exported journal as the fleet holds it,
// one page of records after position after (admin).
func (c *Client) DeviceEvents(ctx context.Context, id, after string, limit int) (*api.DeviceEvents, error) {
	if !api.ValidDeviceID(id) {
		return nil, fmt.Errorf("device ID %.40q: want dev- and 32 hex digits", id)
	}
	var out api.DeviceEvents
	if err := c.do(ctx, http.MethodGet, api.DevicePath(api.PathAdminDeviceEvents, id), pageQuery(after, limit), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Lift ends a device's outbound block or quarantine early (admin).
func (c *Client) Lift(ctx context.Context, id, kind string) (*api.FindingsPage, error) {
	if !api.ValidDeviceID(id) {
		return nil, fmt.Errorf("device ID %.40q: want dev- and 32 hex digits", id)
	}
	var out api.FindingsPage
	if err := c.postJSON(ctx, api.DevicePath(api.PathAdminLift, id), api.LiftRequest{Kind: kind}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
