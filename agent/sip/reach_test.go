package sip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/test"
)

func TestClassifyError(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name string
		in   error
		want string
	}{
		{"nil", nil, ""},
		{"connect refused", fmt.Errorf("tls flow to x: dial TCP error: %w", dial), ErrorNetwork},
		{"connect timeout", fmt.Errorf("tls flow: %w", &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}), ErrorNetwork},
		{"eof in handshake", fmt.Errorf("tls flow to x: TLS handshake error: %w", io.EOF), ErrorNetwork},
		{"reset in handshake", fmt.Errorf("tls flow to x: TLS handshake error: %w", &net.OpError{Op: "read", Err: syscall.ECONNRESET}), ErrorNetwork},
		{"eof after the handshake", fmt.Errorf("register: %w", io.EOF), ErrorOther},
		{"reset on a flow that is up", fmt.Errorf("register: %w", &net.OpError{Op: "write", Err: syscall.ECONNRESET}), ErrorOther},
		{"tls alert", fmt.Errorf("tls flow to x: TLS handshake error: %w", tls.AlertError(42)), ErrorRefused},
		{"unknown authority", fmt.Errorf("TLS handshake error: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), ErrorRefused},
		{"weak session", fmt.Errorf("tls flow: %w", policy.ErrWeakAlgorithm), ErrorRefused},
		{"flow closed after handshake", fmt.Errorf("register: %w", errFlowClosed), ErrorRefused},
		{"sip 403", fmt.Errorf("register: %w", &ResponseError{"REGISTER", 403, "Forbidden"}), ErrorRefused},
		{"timer F", fmt.Errorf("register: %w", context.DeadlineExceeded), ErrorOther},
		{"local", errors.New("credential sip/alice: store sealed"), ErrorOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClassifyError(tt.in); got != tt.want {
				t.Errorf("ClassifyError(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestClassifyErrorReal registers real accounts against real listeners on
// loopback and checks the class of what sipgo and crypto/tls return: a
// closed port and a forward with nothing behind it (accepts, then closes)
// are the network; a server whose certificate does not verify, and one
// that refuses our (missing) client certificate, refused.
func TestClassifyErrorReal(t *testing.T) {
	pki := test.NewPKI(t, filepath.Join(t.TempDir(), "pki"))
	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(caPEM)

	closedPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	acceptClose := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	tlsServer := func(certFile, keyFile string, clientAuth tls.ClientAuthType) func(t *testing.T) string {
		return func(t *testing.T) string {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert},
				ClientAuth: clientAuth, ClientCAs: roots, MinVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						// Handshake, then read until the client gives up;
						// the error is the client leaving.
						_, _ = io.Copy(io.Discard, c)
					}()
				}
			}()
			return ln.Addr().String()
		}
	}
	goodCert, goodKey := pki.Server("127.0.0.1", net.ParseIP("127.0.0.1"))
	rogueCert, rogueKey := pki.RogueServer("127.0.0.1", net.ParseIP("127.0.0.1"))
	tests := []struct {
		name      string
		registrar func(t *testing.T) string
		want      []string // any of
	}{
		{"closed port", closedPort, []string{ErrorNetwork}},
		{"forward with nothing behind", acceptClose, []string{ErrorNetwork}},
		{"server certificate from another CA", tlsServer(rogueCert, rogueKey, tls.NoClientCert), []string{ErrorRefused}},
		// TLS 1.3: our handshake completes, the server's alert arrives
		// while the REGISTER is written or read; which of the two sipgo
		// reports depends on timing. Never the network.
		{"client certificate required", tlsServer(goodCert, goodKey, tls.RequireAndVerifyClientCert), []string{ErrorRefused, ErrorOther}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Account{Name: "alice", User: "alice", AuthUser: "alice", Domain: "example.test",
				Registrar: tt.registrar(t), ServerName: "127.0.0.1", DigestMin: policy.DefaultDigestMin,
				Expires: 600 * time.Second, Keepalive: 90 * time.Second, RetryBase: time.Hour, RetryMax: time.Hour, MaxCalls: 1}
			acct, err := NewAccount(cfg, AccountDeps{Roots: roots, Password: func() (string, error) { return "pw", nil },
				Media: MediaParams{LocalIP: netip.MustParseAddr("127.0.0.1"), PortMin: 40000, PortMax: 40010}, Instance: "urn:uuid:00000000-0000-0000-0000-000000000001",
				Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatalf("NewAccount() error %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); acct.Run(ctx) }()
			defer func() { cancel(); <-done }()
			// The first attempt ends within Timer F (32 s); retries are an
			// hour apart, so the status holds that attempt's error.
			deadline := time.Now().Add(40 * time.Second)
			var st AccountStatus
			for st = acct.Status(); st.LastError == "" && time.Now().Before(deadline); st = acct.Status() {
				time.Sleep(20 * time.Millisecond)
			}
			if st.LastError == "" {
				t.Fatalf("no registration error within 40 s: %+v", st)
			}
			if !slices.Contains(tt.want, st.ErrorClass) {
				t.Errorf("registration to %s failed with %q: ErrorClass = %q, want %q", tt.name, st.LastError, st.ErrorClass, tt.want)
			}
			t.Logf("%s: %s (%s)", tt.name, st.LastError, st.ErrorClass)
		})
	}
}
