package media

import (
	"context"
	"fmt"
)

// Start creates the SRTP contexts and starts the media: for SDES from the
// exchanged keys, for DTLS after a handshake whose peer certificate matched
// the SDP fingerprint. Until it returns nil, nothing but DTLS handshake
// records is sent. Without rtcp-mux, DTLS-SRTP needs a second association on
// the RTCP ports (RFC 5764); it runs in the background, and SRTCP waits
// for it.
func (s *Session) Start(ctx context.Context) error {
	s.mu.Lock()
	if err := s.want(phaseNegotiated); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("media start: %w", err)
	}
	s.ph = phaseStarting
	p := *s.neg
	s.mu.Unlock()

	suite, peerCert, err := s.key(ctx, &p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ph == phaseClosed {
		return ErrClosed
	}
	if err != nil {
		s.ph = phaseFailed
		s.log.Warn("media start failed", "err", err)
		return fmt.Errorf("media start: %w", err)
	}
	s.ph, s.suite, s.peerCert = phaseRunning, suite, peerCert
	s.snd = newSender(s)
	s.sending.Add(2)
	go s.snd.run()
	go s.playout()
	s.log.Info("media started", "security", s.caps.security, "suite", suite)
	return nil
}

// key runs the keying step of Start and stores the contexts.
func (s *Session) key(ctx context.Context, p *mediaParams) (suite string, peerCert []byte, err error) {
	if s.caps.security == SecuritySDES {
		keys := sessionKeys{
			Suite:    p.localKey.Suite,
			LocalKey: p.localKey.Key, LocalSalt: p.localKey.Salt,
			RemoteKey: p.remoteKey.Key, RemoteSalt: p.remoteKey.Salt, RemoteMKI: p.remoteKey.MKI,
		}
		tx, rx, err := keys.contexts()
		if err != nil {
			return "", nil, err
		}
		s.rx[compRTP].Store(rx)
		s.rx[compRTCP].Store(rx)
		s.tx[compRTP].Store(tx)
		s.tx[compRTCP].Store(tx)
		return keys.Suite.SDESName, nil, nil
	}
	res, err := s.dtls[compRTP].handshake(ctx, s.id, p.dtlsClient, p.fps, s.pionLF)
	if err != nil {
		return "", nil, err
	}
	tx, rx, err := res.keys.contexts()
	if err != nil {
		return "", nil, err
	}
	s.rx[compRTP].Store(rx)
	s.tx[compRTP].Store(tx)
	s.startDrain(compRTP)
	if p.mux {
		s.rx[compRTCP].Store(rx)
		s.tx[compRTCP].Store(tx)
	} else {
		s.goLoop(func() { s.keyRTCP(p.dtlsClient, p.fps) })
	}
	return res.keys.Suite.DTLSName(), res.peerCert, nil
}

// goLoop runs f as a session goroutine unless Close has begun: Close waits
// for every one it did not prevent.
func (s *Session) goLoop(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ph == phaseClosed {
		return
	}
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		f()
	}()
}

// keyRTCP runs the RTCP component's DTLS association.
func (s *Session) keyRTCP(client bool, fps []fingerprint) {
	ctx, cancel := context.WithTimeout(s.life, rtcpHandshakeTimeout)
	defer cancel()
	res, err := s.dtls[compRTCP].handshake(ctx, s.id, client, fps, s.pionLF)
	if err != nil {
		s.log.Warn("dtls rtcp association failed: the call goes on without rtcp", "err", err)
		return
	}
	tx, rx, err := res.keys.contexts()
	if err != nil {
		s.log.Warn("srtcp contexts", "err", err)
		return
	}
	s.rx[compRTCP].Store(rx)
	s.tx[compRTCP].Store(tx)
	s.startDrain(compRTCP)
}

func (s *Session) startDrain(c component) {
	d := s.dtls[c]
	d.mu.Lock()
	conn := d.conn
	d.mu.Unlock()
	s.goLoop(func() { d.drain(conn) })
}
