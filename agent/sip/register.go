package sip

// Registration, RFC 3261 §10: REGISTER with the account's binding, one
// digest challenge answered under the account's floor, the registrar's
// grant read back, and removal (expires=0) at shutdown.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

func (a *Account) aor() sip.Uri {
	return sip.Uri{Scheme: "sip", User: a.cfg.User, Host: a.cfg.Domain}
}

// registrarURI is the Request-URI of REGISTER (RFC 3261 §10.2: the domain)
// and, with lr, the outbound proxy route for other requests.
func (a *Account) registrarURI() sip.Uri {
	return sip.Uri{Scheme: "sip", Host: a.registrar.Addr().String(), Port: int(a.registrar.Port()),
		UriParams: sip.HeaderParams{{K: "transport", V: "tls"}}}
}

// register sends one REGISTER (answering one digest challenge) and returns
// the granted expiry.
func (a *Account) register(ctx context.Context, expires time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 32*time.Second) // RFC 3261 Timer F
	defer cancel()
	if _, err := a.flow(ctx); err != nil {
		return 0, err
	}
	// A registrar that refuses our certificate under TLS 1.3 does so after
	// the handshake, by closing the flow: watch it so the REGISTER fails at
	// once rather than at Timer F.
	ctx, cancelFlow := context.WithCancelCause(ctx)
	defer cancelFlow(nil)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.clock.After(100 * time.Millisecond):
				if a.flowGone() {
					cancelFlow(errFlowClosed)
					return
				}
			}
		}
	}()
	contact := a.contactFor(expires)
	req := a.newRegister(contact, expires)
	res, err := a.cli.Do(ctx, req)
	if err != nil {
		if c := context.Cause(ctx); c != nil && errors.Is(c, errFlowClosed) {
			err = c
		}
		return 0, fmt.Errorf("register: %w", err)
	}
	var realm string // of the challenge we answered
	for attempt := 0; (res.StatusCode == 401 || res.StatusCode == 407 || res.StatusCode == 423) && attempt < 2; attempt++ {
		req = a.newRegister(contact, expires)
		if res.StatusCode == 423 {
			// RFC 3261 §10.2.8: retry with at least Min-Expires.
			if h := res.GetHeader("Min-Expires"); h != nil {
				if v, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && v > 0 && v < 86400 {
					expires = time.Duration(v) * time.Second
					contact = a.contactFor(expires)
					req = a.newRegister(contact, expires)
				}
			}
		} else if realm, err = a.authorize(req, res, true); err != nil {
			return 0, fmt.Errorf("register: %w", err)
		}
		if res, err = a.cli.Do(ctx, req); err != nil {
			if c := context.Cause(ctx); c != nil && errors.Is(c, errFlowClosed) {
				err = c
			}
			return 0, fmt.Errorf("register: %w", err)
		}
	}
	if res.StatusCode != 200 {
		if res.StatusCode == 403 || realm != "" && (res.StatusCode == 401 || res.StatusCode == 407) {
			a.incident(Security{Incident: IncidentAuthFailure, Peer: a.registrar, Method: "REGISTER", Detail: fmt.Sprintf("%d %s", res.StatusCode, res.Reason)})
		}
		return 0, fmt.Errorf("register: %w", &ResponseError{"REGISTER", res.StatusCode, res.Reason})
	}
	granted := grantedExpiry(res, contact, expires)
	a.mu.Lock()
	a.registered, a.granted, a.regAt, a.lastErr, a.failures = true, granted, a.clock.Now(), "", 0
	a.counters.Registrations++
	if realm != "" && a.cfg.Realm == "" && a.realm != realm {
		// The realm of the challenge that led to this 200: from now on only
		// challenges for it are answered.
		a.realm = realm
		a.log.Info("digest realm pinned from the registrar", "realm", realm)
	}
	a.mu.Unlock()
	a.events(Event{Account: a.cfg.Name, Kind: EventRegistered})
	return granted, nil
}

func (a *Account) newRegister(contact *sip.ContactHeader, expires time.Duration) *sip.Request {
	ru := sip.Uri{Scheme: "sip", Host: a.cfg.Domain}
	req := sip.NewRequest(sip.REGISTER, ru)
	req.SetTransport("TLS")
	req.SetDestination(a.registrar.String())
	aor := a.aor()
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	a.mu.Lock()
	callID := sip.CallIDHeader(a.callID)
	a.cseq++
	cseq := &sip.CSeqHeader{SeqNo: a.cseq, MethodName: sip.REGISTER}
	a.mu.Unlock()
	req.AppendHeader(&callID)
	req.AppendHeader(cseq)
	req.AppendHeader(contact)
	ex := sip.ExpiresHeader(uint32(expires / time.Second))
	req.AppendHeader(&ex)
	req.AppendHeader(sip.NewHeader("Supported", "outbound, path"))
	return req
}

// authorize adds the digest answer to req for the challenge in res, under
// the account's digest policy, and returns the challenge's realm. Only a
// challenge that came over the registrar's TLS flow is answered, only for
// the account's realm (config realm, else the one pinned from the
// registrar's REGISTER challenge; a REGISTER before any pin takes the
// registrar's), only with qop=auth, and only at or above digest_min.
func (a *Account) authorize(req *sip.Request, res *sip.Response, register bool) (string, error) {
	name, hdr := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		name, hdr = "Proxy-Authenticate", "Proxy-Authorization"
	}
	refuse := func(err error) (string, error) {
		a.mu.Lock()
		a.counters.ChallengesRefused++
		a.mu.Unlock()
		a.log.Warn("digest challenge refused", "method", string(req.Method), "status", res.StatusCode, "error", err)
		a.incident(Security{Incident: IncidentChallengeRefused, Method: string(req.Method), Detail: err.Error()})
		return "", fmt.Errorf("%d challenge: %w", res.StatusCode, err)
	}
	if err := a.fromFlow(res); err != nil {
		return refuse(err)
	}
	a.mu.Lock()
	realm := a.cfg.Realm
	if realm == "" {
		realm = a.realm
	}
	a.mu.Unlock()
	if realm == "" && !register {
		return refuse(fmt.Errorf("%w: no realm pinned (the registrar never challenged a REGISTER that then succeeded); set the account's realm", ErrChallengeRefused))
	}
	var values []string
	for _, h := range res.GetHeaders(name) {
		values = append(values, h.Value())
	}
	ch, err := chooseChallenge(values, a.cfg.DigestMin, realm)
	if err != nil {
		return refuse(err)
	}
	pw, err := a.password()
	if err != nil {
		return "", fmt.Errorf("account %s password: %w", a.cfg.Name, err)
	}
	v, err := authorization(ch, credentials{a.cfg.AuthUser, pw}, string(req.Method), req.Recipient.String(), 1, newCnonce())
	if err != nil {
		return "", err
	}
	req.RemoveHeader(hdr)
	req.AppendHeader(sip.NewHeader(hdr, v))
	a.log.Debug("answering digest challenge", "algorithm", ch.Algorithm.String(), "realm", ch.Realm)
	return ch.Realm, nil
}

// fromFlow checks that a response came over the registrar's TLS flow: a
// challenge from anywhere else is not the registrar's.
func (a *Account) fromFlow(res *sip.Response) error {
	a.mu.Lock()
	flow := a.flowRemote
	a.mu.Unlock()
	if src := res.Source(); flow == "" || src != flow || !strings.EqualFold(res.Transport(), "TLS") {
		return fmt.Errorf("%w: from %s over %s, not the registrar's flow %s", ErrChallengeRefused, src, res.Transport(), flow)
	}
	return nil
}

// grantedExpiry reads the registrar's grant for our binding: the expires
// param of the Contact that is ours (RFC 3261 §10.2.4), else the Expires
// header, else what we asked for.
func grantedExpiry(res *sip.Response, ours *sip.ContactHeader, asked time.Duration) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		if c.Address.Host != ours.Address.Host || c.Address.Port != ours.Address.Port || c.Address.User != ours.Address.User {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return asked
}

// unregister removes our binding (expires=0) on shutdown, best effort.
func (a *Account) unregister() {
	a.mu.Lock()
	reg := a.registered
	a.registered = false
	a.mu.Unlock()
	if !reg {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	contact := a.contactFor(0)
	req := a.newRegister(contact, 0)
	res, err := a.cli.Do(ctx, req)
	if err == nil && (res.StatusCode == 401 || res.StatusCode == 407) {
		req = a.newRegister(contact, 0)
		if _, err = a.authorize(req, res, true); err == nil {
			res, err = a.cli.Do(ctx, req)
		}
	}
	if err != nil {
		a.log.Warn("unregister failed", "error", err)
		return
	}
	a.log.Info("unregistered", "status", res.StatusCode)
}
