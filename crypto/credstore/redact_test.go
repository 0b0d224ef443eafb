package credstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestRedacted: types that hold secrets log, print and marshal as REDACTED.
func TestRedacted(t *testing.T) {
	const value = "hunter2-the-password"
	e := newEnv(t)
	s := e.open(t, e.softProtector(t))
	mustPut(t, s, "sip/alice", value)
	secret, err := s.Get("sip/alice")
	if err != nil {
		t.Fatalf("Get = %v", err)
	}
	if err := s.CreateIdentity(false); err != nil {
		t.Fatalf("CreateIdentity = %v", err)
	}
	signer, err := s.Signer()
	if err != nil {
		t.Fatalf("Signer = %v", err)
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		slog.New(h).Info("x", "secret", secret, "store", s, "signer", signer, "keys", s.keys)
	}
	for _, verb := range []string{"%v", "%s", "%x", "%q", "%+v", "%#v", "%d"} {
		fmt.Fprintf(&buf, verb+"\n", secret)
	}
	fmt.Fprintln(&buf, secret, signer)
	j, err := json.Marshal(map[string]any{"secret": secret})
	if err != nil {
		t.Fatalf("json.Marshal = %v", err)
	}
	buf.Write(j)
	out := buf.String()
	for _, leak := range []string{value, fmt.Sprintf("%x", value), "D:"} {
		if strings.Contains(out, leak) {
			t.Fatalf("output leaks %q:\n%s", leak, out)
		}
	}
	if n := strings.Count(out, redacted); n < 12 {
		t.Fatalf("output has %d REDACTED, want every secret redacted:\n%s", n, out)
	}
	if string(secret) != value {
		t.Fatalf("[]byte(secret) = %q, want the value", []byte(secret))
	}
	secret.Zero()
	if !bytes.Equal(secret, make([]byte, len(value))) {
		t.Fatalf("Zero left %q", []byte(secret))
	}
}
