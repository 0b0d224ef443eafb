package media

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/hardphone/hardphone/crypto/policy"
)

// maxDatagram bounds every media datagram we build or accept: far above a
// 20 ms G.711 packet (172 bytes plain, 188 sealed with GCM) and below the
// IPv4 minimum reassembly size times three, so nothing we send fragments.
const maxDatagram = 1500

// srtpTx seals outgoing RTP and RTCP with one SRTP context (RFC 3711). It is
// created only once keys are agreed; the wire refuses to write without one,
// which is what makes a plaintext packet impossible to send.
type srtpTx struct {
	mu      sync.Mutex // guards everything below
	ctx     *srtp.Context
	plain   []byte
	out     []byte
	rtcpHdr rtcp.Header
}

func newSRTPTx(suite policy.SRTPSuite, key, salt []byte) (*srtpTx, error) {
	ctx, err := srtp.CreateContext(key, salt, suite.Profile)
	if err != nil {
		return nil, fmt.Errorf("srtp send context %s: %w", suite.SDESName, err)
	}
	return &srtpTx{ctx: ctx, plain: make([]byte, maxDatagram), out: make([]byte, maxDatagram+64)}, nil
}

// sealRTP marshals hdr and payload and protects them. The result is valid
// until the next seal call; t.mu must be held.
func (t *srtpTx) sealRTP(hdr *rtp.Header, payload []byte) ([]byte, error) {
	n := hdr.MarshalSize()
	if n+len(payload) > maxDatagram {
		return nil, fmt.Errorf("rtp packet of %d bytes: %w", n+len(payload), errMalformed)
	}
	if _, err := hdr.MarshalTo(t.plain[:n]); err != nil {
		return nil, fmt.Errorf("marshal rtp header: %w", err)
	}
	copy(t.plain[n:], payload)
	out, err := t.ctx.EncryptRTP(t.out[:0], t.plain[:n+len(payload)], hdr)
	if err != nil {
		return nil, fmt.Errorf("srtp protect: %w", err)
	}
	return out, nil
}

// sealRTCP protects a compound RTCP packet (RFC 3711 §3.4). t.mu must be
// held.
func (t *srtpTx) sealRTCP(plain []byte) ([]byte, error) {
	if len(plain) > maxDatagram {
		return nil, fmt.Errorf("rtcp packet of %d bytes: %w", len(plain), errMalformed)
	}
	out, err := t.ctx.EncryptRTCP(t.out[:0], plain, &t.rtcpHdr)
	if err != nil {
		return nil, fmt.Errorf("srtcp protect: %w", err)
	}
	return out, nil
}

// srtpRx authenticates and decrypts received SRTP and SRTCP with the peer's
// key. Replay protection is always on for both (RFC 3711 §3.3.2, window
// policy.SRTPReplayWindow), and the replay window only moves after a packet
// authenticated (pion commits the index after the tag check).
type srtpRx struct {
	mu      sync.Mutex // guards ctx and rtcpHdr
	ctx     *srtp.Context
	rtcpHdr rtcp.Header
}

func newSRTPRx(suite policy.SRTPSuite, key, salt, mki []byte) (*srtpRx, error) {
	opts := []srtp.ContextOption{
		srtp.SRTPReplayProtection(policy.SRTPReplayWindow),
		srtp.SRTCPReplayProtection(policy.SRTPReplayWindow),
	}
	if len(mki) > 0 {
		opts = append(opts, srtp.MasterKeyIndicator(mki))
	}
	ctx, err := srtp.CreateContext(key, salt, suite.Profile, opts...)
	if err != nil {
		return nil, fmt.Errorf("srtp receive context %s: %w", suite.SDESName, err)
	}
	return &srtpRx{ctx: ctx}, nil
}

// openRTP verifies and decrypts one SRTP packet into dst. Its error is
// errAuth, errReplay or errMalformed, so the caller can count it.
func (r *srtpRx) openRTP(dst, pkt []byte, hdr *rtp.Header) ([]byte, error) {
	r.mu.Lock()
	out, err := r.ctx.DecryptRTP(dst, pkt, hdr)
	r.mu.Unlock()
	if err != nil {
		return nil, classifySRTPError(err)
	}
	return out, nil
}

// openRTCP verifies and decrypts one SRTCP packet into dst.
func (r *srtpRx) openRTCP(dst, pkt []byte) ([]byte, error) {
	r.mu.Lock()
	out, err := r.ctx.DecryptRTCP(dst, pkt, &r.rtcpHdr)
	r.mu.Unlock()
	if err != nil {
		return nil, classifySRTPError(err)
	}
	return out, nil
}

// classifySRTPError sorts pion's decrypt errors into what Stats counts.
// pion keeps its replay sentinel unexported and wraps it in an unexported
// type whose text ends in "duplicated packet"; TestReplayedPacketDropped
// fails if that ever changes, rather than replays silently counting as
// malformed.
func classifySRTPError(err error) error {
	switch {
	case errors.Is(err, srtp.ErrFailedToVerifyAuthTag), errors.Is(err, srtp.ErrMKINotFound):
		return fmt.Errorf("%w: %v", errAuth, err)
	case strings.Contains(err.Error(), "duplicated packet"):
		return fmt.Errorf("%w: %v", errReplay, err)
	}
	return fmt.Errorf("%w: %v", errMalformed, err)
}

// sessionKeys is one direction pair of SRTP master keys for a suite, from
// SDES lines or the DTLS-SRTP exporter (RFC 5764 §4.2).
type sessionKeys struct {
	Suite                 policy.SRTPSuite
	LocalKey, LocalSalt   []byte
	RemoteKey, RemoteSalt []byte
	RemoteMKI             []byte
}

// LogValue keeps key material out of logs.
func (sessionKeys) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// contexts builds the send and receive contexts for k.
func (k sessionKeys) contexts() (*srtpTx, *srtpRx, error) {
	tx, err := newSRTPTx(k.Suite, k.LocalKey, k.LocalSalt)
	if err != nil {
		return nil, nil, err
	}
	rx, err := newSRTPRx(k.Suite, k.RemoteKey, k.RemoteSalt, k.RemoteMKI)
	if err != nil {
		return nil, nil, err
	}
	return tx, rx, nil
}
