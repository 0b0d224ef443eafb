package client

import (
	"context"
	"crypto"
	"fmt"
	"net/http"

	"github.com/hardphone/hardphone/fleet/api"
)

// Renew asks for a new certificate for the identity key (mutual TLS with
// the current one).
func (c *Client) Renew(ctx context.Context, csr []byte) (*api.CertificateResponse, error) {
	var out api.CertificateResponse
	if err := c.postJSON(ctx, api.PathRenew, api.RenewRequest{CSR: csr}, &out); err != nil {
		return nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("renew answer: %w", err)
	}
	return &out, nil
}

// CheckIn signs the report with the identity key and sends it.
func (c *Client) CheckIn(ctx context.Context, key crypto.Signer, r api.Report) (*api.CheckInResponse, error) {
	body, err := api.MarshalReport(r)
	if err != nil {
		return nil, err
	}
	sig, err := api.SignReport(key, body)
	if err != nil {
		return nil, err
	}
	return c.CheckInSigned(ctx, body, sig)
}

// CheckInSigned sends a report body with its SignatureHeader value.
func (c *Client) CheckInSigned(ctx context.Context, body []byte, sig string) (*api.CheckInResponse, error) {
	var out api.CheckInResponse
	h := http.Header{}
	h.Set(api.SignatureHeader, sig)
	if err := c.do(ctx, http.MethodPost, api.PathCheckIn, nil, body, h, &out); err != nil {
		return nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("check-in answer: %w", err)
	}
	return &out, nil
}

// CRL fetches the device CA's CRL (DER; the caller verifies it).
func (c *Client) CRL(ctx context.Context) ([]byte, error) {
	var der []byte
	if err := c.do(ctx, http.MethodGet, api.PathCRL, nil, nil, nil, &der); err != nil {
		return nil, err
	}
	return der, nil
}
