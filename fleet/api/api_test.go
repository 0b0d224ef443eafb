package api

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func sampleReport() Report {
	return Report{
		DeviceID: "dev-0123456789abcdef0123456789abcdef",
		SentAt:   time.Date(2030, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600)),
		Model:    "hp-desk-1", Serial: "HP1-000001",
		Firmware:      Firmware{Version: "1.2.3", SecurityVersion: 7},
		Slots:         []Slot{{Name: "A", Version: "1.2.3", SecurityVersion: 7, Booted: true, Good: true}},
		Boot:          Boot{Slot: "A", AttemptsLeft: 3, MarkedGood: true},
		CertNotAfter:  time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC),
		Lockdown:      Lockdown{OK: false, Findings: []string{"sshd running"}},
		Counters:      map[string]uint64{"z": 1, "a": 2},
		UptimeSeconds: 99,
	}
}

func TestReportCanonical(t *testing.T) {
	body, err := MarshalReport(sampleReport())
	if err != nil {
		t.Fatalf("MarshalReport error %v", err)
	}
	got, err := ParseReport(body)
	if err != nil {
		t.Fatalf("ParseReport(MarshalReport(r)) error %v", err)
	}
	want := sampleReport()
	if !got.SentAt.Equal(want.SentAt) || got.Counters["a"] != 2 || got.Lockdown.Findings[0] != "sshd running" {
		t.Fatalf("ParseReport = %+v, want %+v", got, want)
	}
	tests := []struct {
		name string
		mod  func(string) string
	}{
		{"spacing", func(s string) string { return strings.Replace(s, `":`, `": `, 1) }},
		{"unknown field", func(s string) string { return strings.Replace(s, `{`, `{"x":1,`, 1) }},
		{"duplicate field", func(s string) string { return strings.Replace(s, `{`, `{"model":"other",`, 1) }},
		{"zone", func(s string) string { return strings.Replace(s, `Z"`, `+00:00"`, 1) }},
		{"map order", func(s string) string { return strings.Replace(s, `{"a":2,"z":1}`, `{"z":1,"a":2}`, 1) }},
		{"trailing", func(s string) string { return s + " " }},
		{"second value", func(s string) string { return s + "{}" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mod(string(body))
			if b == string(body) {
				t.Fatalf("mutation %s changed nothing in %s", tt.name, body)
			}
			if _, err := ParseReport([]byte(b)); err == nil {
				t.Fatalf("ParseReport(%s) = nil error, want a refusal", b)
			}
		})
	}
	if _, err := ParseReport(bytes.Repeat([]byte(" "), MaxReport+1)); err == nil {
		t.Fatalf("ParseReport(oversize) = nil error")
	}
}

func TestReportSignature(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	body, err := MarshalReport(sampleReport())
	if err != nil {
		t.Fatalf("MarshalReport: %v", err)
	}
	sig, err := SignReport(key, body)
	if err != nil {
		t.Fatalf("SignReport: %v", err)
	}
	if err := VerifyReport(&key.PublicKey, body, sig); err != nil {
		t.Fatalf("VerifyReport(good) = %v", err)
	}
	flipped := bytes.Clone(body)
	flipped[10] ^= 1
	tests := []struct {
		name string
		key  *ecdsa.PublicKey
		body []byte
		sig  string
	}{
		{"other key", &other.PublicKey, body, sig},
		{"altered body", &key.PublicKey, flipped, sig},
		{"empty", &key.PublicKey, body, ""},
		{"not base64", &key.PublicKey, body, "!!!"},
		{"huge", &key.PublicKey, body, strings.Repeat("A", MaxSignatureHeader+4)},
		{"nil key", nil, body, sig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyReport(tt.key, tt.body, tt.sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("VerifyReport(%s) = %v, want ErrBadSignature", tt.name, err)
			}
		})
	}
}

// TestSecretRedacted: the activated secret never reaches a log line or a
// formatted string, only the request body.
func TestSecretRedacted(t *testing.T) {
	s := Secret("0123456789abcdefSECRET")
	req := EnrolFinishRequest{ChallengeID: strings.Repeat("a", 32), Secret: s}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "req", req, "secret", s)
	out := buf.String() + fmt.Sprintf("%v %+v %#v %s", s, req, s, s)
	if strings.Contains(out, "SECRET") {
		t.Fatalf("secret printed: %s", out)
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var back EnrolFinishRequest
	if err := DecodeStrict(bytes.NewReader(body), &back); err != nil || string(back.Secret) != string(s) {
		t.Fatalf("round trip = %q, %v", back.Secret, err)
	}
}

func TestValidate(t *testing.T) {
	good := EnrolStartRequest{EKType: EKTypeECCP256, EKCert: []byte{1}, IdentityPublic: []byte{1}, CSR: []byte{1}}
	tests := []struct {
		name string
		mod  func(*EnrolStartRequest)
		ok   bool
	}{
		{"good", func(*EnrolStartRequest) {}, true},
		{"ek type", func(r *EnrolStartRequest) { r.EKType = "dsa" }, false},
		{"no cert", func(r *EnrolStartRequest) { r.EKCert = nil }, false},
		{"big cert", func(r *EnrolStartRequest) { r.EKCert = make([]byte, maxEKCert+1) }, false},
		{"big public", func(r *EnrolStartRequest) { r.IdentityPublic = make([]byte, maxIdentityPublic+1) }, false},
		{"no csr", func(r *EnrolStartRequest) { r.CSR = nil }, false},
	}
	for _, tt := range tests {
		r := good
		tt.mod(&r)
		if err := r.Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%s) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	fin := []struct {
		id     string
		secret int
		ok     bool
	}{
		{strings.Repeat("a", 32), 32, true},
		{strings.Repeat("a", 32), 15, false},
		{strings.Repeat("a", 32), 33, false},
		{strings.Repeat("A", 32), 32, false},
		{strings.Repeat("a", 31), 32, false},
	}
	for _, tt := range fin {
		r := EnrolFinishRequest{ChallengeID: tt.id, Secret: make(Secret, tt.secret)}
		if err := r.Validate(); (err == nil) != tt.ok {
			t.Errorf("EnrolFinishRequest{%q, %d bytes}.Validate() = %v, want ok %v", tt.id, tt.secret, err, tt.ok)
		}
	}
	if !ValidDeviceID("dev-0123456789abcdef0123456789abcdef") || ValidDeviceID("dev-0123456789ABCDEF0123456789abcdef") {
		t.Fatalf("ValidDeviceID accepts the wrong forms")
	}
}

func TestCodes(t *testing.T) {
	tests := []struct {
		code Code
		want int
	}{
		{CodeBadRequest, http.StatusBadRequest},
		{CodeTooLarge, http.StatusRequestEntityTooLarge},
		{CodeUnauthenticated, http.StatusUnauthorized},
		{CodeUntrustedEK, http.StatusForbidden},
		{CodeNotAllowed, http.StatusForbidden},
		{CodeReplay, http.StatusForbidden},
		{CodePosture, http.StatusForbidden},
		{CodeConflict, http.StatusConflict},
		{CodeLimit, http.StatusTooManyRequests},
		{CodeUnavailable, http.StatusServiceUnavailable},
		{Code("???"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		if got := tt.code.Status(); got != tt.want {
			t.Errorf("Code(%q).Status() = %d, want %d", tt.code, got, tt.want)
		}
	}
	err := fmt.Errorf("renew: %w", &Error{Code: CodeRevoked, Status: 403, Message: "x"})
	if !IsCode(err, CodeRevoked) || IsCode(err, CodeRetired) {
		t.Fatalf("IsCode(%v) wrong", err)
	}
	if got := DevicePath(PathAdminRevoke, "dev-1"); got != "/v1/admin/devices/dev-1/revoke" {
		t.Fatalf("DevicePath = %q", got)
	}
	if got := SettingPath("min_security_version"); got != "/v1/admin/settings/min_security_version" {
		t.Fatalf("SettingPath = %q", got)
	}
}
