package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/hardphone/hardphone/fleet/api"
)

// LogValue implements slog.LogValuer: the server only, never the session
// token.
func (c *Client) LogValue() slog.Value { return slog.StringValue("fleet client of " + c.base.Host) }

// WithSession returns a client that sends an admin session token with
// every request ("Authorization: Bearer"), and the User-Agent the session
// is bound to (the server binds a session to the client's network and
// user agent). It shares the connections of c.
func (c *Client) WithSession(token, userAgent string) (*Client, error) {
	if token == "" || len(token) > 64 || userAgent == "" || len(userAgent) > 256 {
		return nil, errors.New("fleet client: session token of 1..64 bytes and a user agent are required")
	}
	cp := *c
	cp.session, cp.agent = token, userAgent
	return &cp, nil
}

func checkRollout(id string) error {
	if !api.ValidRolloutID(id) {
		return fmt.Errorf("rollout ID %.40q: want ro- and 32 hex digits", id)
	}
	return nil
}

// CreateRollout starts a rollout (pending until approved).
func (c *Client) CreateRollout(ctx context.Context, req api.RolloutRequest) (*api.Rollout, error) {
	var out api.Rollout
	if err := c.postJSON(ctx, api.PathAdminRollouts, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rollouts lists rollouts, newest first.
func (c *Client) Rollouts(ctx context.Context, after string, limit int) (*api.RolloutPage, error) {
	var out api.RolloutPage
	if err := c.do(ctx, http.MethodGet, api.PathAdminRollouts, pageQuery(after, limit), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rollout shows one rollout.
func (c *Client) Rollout(ctx context.Context, id string) (*api.Rollout, error) {
	if err := checkRollout(id); err != nil {
		return nil, err
	}
	var out api.Rollout
	if err := c.do(ctx, http.MethodGet, api.RolloutPath(api.PathAdminRollout, id), nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RolloutDevices returns a page of a rollout's devices.
func (c *Client) RolloutDevices(ctx context.Context, id, after string, limit int) (*api.RolloutDevicePage, error) {
	if err := checkRollout(id); err != nil {
		return nil, err
	}
	var out api.RolloutDevicePage
	if err := c.do(ctx, http.MethodGet, api.RolloutPath(api.PathAdminRolloutDevices, id), pageQuery(after, limit), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Staged returns a page of a rollout's staged targets.
func (c *Client) Staged(ctx context.Context, id, after string) (*api.StagedPage, error) {
	if err := checkRollout(id); err != nil {
		return nil, err
	}
	var out api.StagedPage
	if err := c.do(ctx, http.MethodGet, api.RolloutPath(api.PathAdminRolloutStaged, id), pageQuery(after, api.MaxStagedPage), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApproveRollout approves a rollout whose director signs alone.
func (c *Client) ApproveRollout(ctx context.Context, id string) (*api.Rollout, error) {
	return c.rolloutPost(ctx, api.PathAdminRolloutApprove, id, api.RolloutAction{})
}

// SignRollout uploads signatures over staged targets.
func (c *Client) SignRollout(ctx context.Context, id string, up api.SignatureUpload) (*api.Rollout, error) {
	return c.rolloutPost(ctx, api.PathAdminRolloutSignatures, id, up)
}

// HaltRollout, ResumeRollout and AbortRollout control a rollout.
func (c *Client) HaltRollout(ctx context.Context, id, reason string) (*api.Rollout, error) {
	return c.rolloutPost(ctx, api.PathAdminRolloutHalt, id, api.RolloutAction{Reason: reason})
}

// ResumeRollout lets a halted rollout go on.
func (c *Client) ResumeRollout(ctx context.Context, id, reason string) (*api.Rollout, error) {
	return c.rolloutPost(ctx, api.PathAdminRolloutResume, id, api.RolloutAction{Reason: reason})
}

// AbortRollout ends a rollout, pointing the devices it moved back.
func (c *Client) AbortRollout(ctx context.Context, id, reason string) (*api.Rollout, error) {
	return c.rolloutPost(ctx, api.PathAdminRolloutAbort, id, api.RolloutAction{Reason: reason})
}

func (c *Client) rolloutPost(ctx context.Context, path, id string, in any) (*api.Rollout, error) {
	if err := checkRollout(id); err != nil {
		return nil, err
	}
	var out api.Rollout
	if err := c.postJSON(ctx, api.RolloutPath(path, id), in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RegisterApproverKey registers the calling admin's approval key.
func (c *Client) RegisterApproverKey(ctx context.Context, req api.ApproverKeyRequest) (*api.ApproverKey, error) {
	var out api.ApproverKey
	if err := c.postJSON(ctx, api.PathAdminApproverKeys, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApproverKeys lists the registered approval keys, the fleet's name and
// how many signatures a device's targets needs.
func (c *Client) ApproverKeys(ctx context.Context) (*api.ApproverKeyList, error) {
	var out api.ApproverKeyList
	if err := c.do(ctx, http.MethodGet, api.PathAdminApproverKeys, nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ExportAudit streams the audit log's export to w (at most max bytes).
func (c *Client) ExportAudit(ctx context.Context, w io.Writer, max int64) (int64, error) {
	u := *c.base
	u.Path = api.PathAdminAuditExport
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, fmt.Errorf("audit export: %w", err)
	}
	if c.session != "" {
		req.Header.Set("Authorization", "Bearer "+c.session)
		req.Header.Set("User-Agent", c.agent)
	}
	// The export may take longer than one API call.
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("audit export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // the error body, best effort
		return 0, fmt.Errorf("audit export: %w", apiError(resp.StatusCode, b))
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, max+1))
	if err != nil {
		return n, fmt.Errorf("audit export: %w", err)
	}
	if n > max {
		return n, fmt.Errorf("audit export: over %d bytes", max)
	}
	return n, nil
}
