package client

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"testing"

	"github.com/hardphone/hardphone/fleet/api"
)

func TestNewRefuses(t *testing.T) {
	roots := x509.NewCertPool()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"plain http", Config{URL: "http://fleet.example.com", Roots: roots}},
		{"user info", Config{URL: "https://u:p@fleet.example.com", Roots: roots}},
		{"path", Config{URL: "https://fleet.example.com/v1", Roots: roots}},
		{"query", Config{URL: "https://fleet.example.com?x=1", Roots: roots}},
		{"no host", Config{URL: "https://", Roots: roots}},
		{"no roots", Config{URL: "https://fleet.example.com"}},
		{"bad dial address", Config{URL: "https://fleet.example.com", Roots: roots, DialAddr: "10.0.0.1"}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("New(%s) = nil error", tt.name)
		}
	}
	if _, err := New(Config{URL: "https://fleet.example.com:8443/", Roots: roots, DialAddr: "10.0.0.1:8443"}); err != nil {
		t.Fatalf("New(good) error %v", err)
	}
}

func TestAPIError(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   api.Code
	}{
		{403, `{"error":{"code":"not_allowed","message":"no"}}`, api.CodeNotAllowed},
		{503, `<html>busy</html>`, api.CodeUnavailable},
		{429, ``, api.CodeLimit},
		{404, `not json`, api.CodeBadRequest},
		{500, `{"error":{}}`, api.CodeInternal},
	}
	for _, tt := range tests {
		e := apiError(tt.status, []byte(tt.body))
		if e.Code != tt.want || e.Status != tt.status {
			t.Errorf("apiError(%d, %q) = %s %d, want %s", tt.status, tt.body, e.Code, e.Status, tt.want)
		}
	}
	if !Retryable(errors.New("dial tcp: connection refused")) || Retryable(context.Canceled) ||
		Retryable(&api.Error{Code: api.CodeNotAllowed, Status: http.StatusForbidden}) || !Retryable(&api.Error{Code: api.CodeUnavailable}) {
		t.Fatalf("Retryable classifies wrongly")
	}
}
