package sip

// Registration failures sorted by what they say about this phone's
// firmware, for the boot health rule (the agent's): a registrar that
// cannot be reached at the network level says nothing about the firmware,
// a registrar that answered and refused may.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/hardphone/hardphone/crypto/policy"
)

// Error classes (AccountStatus.ErrorClass).
const (
	// ErrorNetwork: the registrar could not be reached at the network
	// level. The TCP connect was refused, timed out or found no route, or
	// the connection closed or reset during the TLS handshake without a
	// TLS alert (nothing that speaks TLS answered: a middlebox or forward
	// with nothing behind it).
	ErrorNetwork = "network-unreachable"
	// ErrorRefused: something that speaks TLS or SIP answered and said no:
	// a TLS alert, a certificate that does not verify, a session below
	// the crypto policy, the flow closed after the handshake (how a TLS
	// 1.3 server refuses a client certificate), a SIP error response.
	ErrorRefused = "refused"
	// ErrorOther: anything else (a local failure, no answer on a flow
	// that is up).
	ErrorOther = "other"
)

// ClassifyError sorts a registration failure into ErrorNetwork,
// ErrorRefused or ErrorOther; "" for nil. Only what is certainly a network
// failure is ErrorNetwork: the boot health rule treats it as no fault of
// the firmware.
func ClassifyError(err error) string {
	if err == nil {
		return ""
	}
	var (
		alert   tls.AlertError
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		resp    *ResponseError
		op      *net.OpError
	)
	switch {
	case errors.As(err, &alert), errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &host),
		errors.As(err, &invalid), errors.As(err, &resp), errors.Is(err, errFlowClosed),
		errors.Is(err, policy.ErrWeakAlgorithm):
		return ErrorRefused
	case errors.As(err, &op) && op.Op == "dial":
		return ErrorNetwork
	case handshakeCut(err):
		return ErrorNetwork
	}
	return ErrorOther
}

// handshakeCut reports a TLS handshake that ended because the connection
// closed, reset or timed out rather than on an alert. sipgo's TLS
// transport wraps handshake failures as "TLS handshake error: %w" (its
// transport_tls.go); TestClassifyErrorReal pins that against real
// listeners.
func handshakeCut(err error) bool {
	if !strings.Contains(err.Error(), "TLS handshake error") {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrDeadlineExceeded)
}
