package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"net/http"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/attest"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/store"
)

// enrolStart checks what the phone claims and answers a credential only
// its TPM can open:
//
//  1. the EK certificate chains to a trusted manufacturer and is an EK
//     certificate of the type named (attest.VerifyEK);
//  2. its SHA-256 is on the allow-list;
//  3. the CSR's signature verifies, and its key is the identity key whose
//     TPMT_PUBLIC says TPM-generated, fixed to the TPM
//     (attest.CheckIdentityKey);
//  4. the TPM has no live device with another identity key;
//  5. a fresh secret goes into a credential for that EK and the key's
//     Name (attest.MakeCredential); its hash into a single-use challenge.
//
// Nothing is written before the last step.
func (s *Server) enrolStart(w http.ResponseWriter, r *http.Request) error {
	var req api.EnrolStartRequest
	if err := decode(w, r, api.MaxRequestBody, &req); err != nil {
		return err
	}
	now := s.o.now()
	ek, err := attest.VerifyEK(req.EKCert, s.mfgRoots, now, attest.WithIntermediates(s.mfgInter...))
	ekHash := store.EKHash(sha256.Sum256(req.EKCert))
	switch {
	case errors.Is(err, attest.ErrUntrustedEK):
		return refuse(api.CodeUntrustedEK, "EK certificate not issued by a manufacturer this fleet trusts").with("ek", ekHash.String())
	case err != nil:
		return refuseErr(api.CodeNotEK, err, "EK certificate refused").with("ek", ekHash.String())
	}
	if typ, err := attest.EKType(ek.PublicKey); err != nil || typ != req.EKType {
		return refuse(api.CodeNotEK, "EK certificate is for a %s key, not %s", typ, req.EKType).with("ek", ekHash.String())
	}
	allowed, err := s.st.LookupAllowed(r.Context(), ekHash)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(api.CodeNotAllowed, "this TPM is not on the fleet's allow-list").with("ek", ekHash.String())
	}
	if err != nil {
		return storeError("allow-list", err)
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return refuse(api.CodeBadRequest, "CSR does not parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return refuse(api.CodeBadRequest, "CSR signature: %v", err)
	}
	id, err := attest.CheckIdentityKey(req.IdentityPublic, csr.PublicKey)
	if err != nil {
		return refuseErr(api.CodeIdentityKey, err, "identity key refused").with("ek", ekHash.String(), "serial", allowed.Serial)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(id.Public)
	if err != nil {
		return refuseErr(api.CodeIdentityKey, err, "identity key")
	}
	if err := s.checkReenrol(r, ekHash, pubDER); err != nil {
		return err
	}
	var sealing *attest.SealingKey
	if req.SealingPublic != nil {
		if sealing, err = attest.CheckSealingKey(req.SealingPublic); err != nil {
			return refuseErr(api.CodeSealingKey, err, "sealing key refused").with("ek", ekHash.String(), "serial", allowed.Serial)
		}
	}
	secret := make([]byte, attest.MaxSecret)
	// crypto/rand.Read never returns an error.
	_, _ = rand.Read(secret)
	defer clear(secret)
	blob, enc, err := attest.MakeCredential(ek.PublicKey, id.Name, secret)
	if err != nil {
		return refuseErr(api.CodeNotEK, err, "make credential").with("ek", ekHash.String())
	}
	c := store.Challenge{
		ID:                store.NewChallengeID(),
		EK:                ekHash,
		AKName:            id.Name,
		IdentityPublicKey: pubDER,
		SecretHash:        sha256.Sum256(secret),
		CreatedAt:         now,
		ExpiresAt:         now.Add(s.o.challengeLifetime),
	}
	resp := api.EnrolStartResponse{ChallengeID: c.ID.String(), CredentialBlob: blob, EncryptedSecret: enc, ExpiresAt: store.NormTime(c.ExpiresAt)}
	if sealing != nil {
		// A second credential, for the sealing key's Name, with its own
		// secret: only a TPM holding both keys next to the EK answers
		// both.
		sealSecret := make([]byte, attest.MaxSecret)
		// crypto/rand.Read never returns an error.
		_, _ = rand.Read(sealSecret)
		defer clear(sealSecret)
		sblob, senc, err := attest.MakeCredential(ek.PublicKey, sealing.Name, sealSecret)
		if err != nil {
			return refuseErr(api.CodeNotEK, err, "make sealing credential").with("ek", ekHash.String())
		}
		c.SealingPublicKey, c.SealingSecretHash = sealing.SPKI, sha256.Sum256(sealSecret)
		resp.SealingCredentialBlob, resp.SealingEncryptedSecret = sblob, senc
	}
	if err := s.st.PutChallenge(r.Context(), c); err != nil {
		return storeError("store challenge", err).with("ek", ekHash.String())
	}
	s.metrics.add("challenges")
	s.log.Info("enrolment challenge", "ek", ekHash.String(), "serial", allowed.Serial, "challenge", c.ID.String(),
		"sealing_key", sealing != nil)
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// checkReenrol decides what an enrolment of a TPM that already has a
// device means: the same identity key again is a phone that lost its
// answer (it gets a new certificate on finish); another key, or a revoked
// device, needs an admin to retire the old record first.
func (s *Server) checkReenrol(r *http.Request, ek store.EKHash, pubDER []byte) error {
	d, err := s.st.GetDeviceByEK(r.Context(), ek)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return storeError("look up device", err)
	}
	if d.State == store.StateRevoked {
		return refuse(api.CodeRevoked, "this TPM's device %s is revoked; an admin must retire it before it enrols again", d.ID).with("ek", ek.String(), "device", string(d.ID))
	}
	if !equalBytes(d.IdentityPublicKey, pubDER) {
		return refuse(api.CodeConflict, "this TPM is enrolled as device %s with another identity key; an admin must retire it first", d.ID).with("ek", ek.String(), "device", string(d.ID))
	}
	return nil
}

// enrolFinish checks the activated secret and issues the certificate:
//
//  1. the challenge is consumed (once, on any replica; replay and expiry
//     are refused, the challenge gone either way);
//  2. SHA-256 of the secret equals the stored hash (constant time): only
//     the TPM with that EK and that identity key could have opened it;
//  3. the TPM is still on the allow-list (subject from its entry);
//  4. the device and its first certificate are created together (or, for
//     a proven re-enrolment of the same key, a certificate added).
func (s *Server) enrolFinish(w http.ResponseWriter, r *http.Request) error {
	var req api.EnrolFinishRequest
	if err := decode(w, r, api.MaxRequestBody, &req); err != nil {
		return err
	}
	defer clear(req.Secret)
	defer clear(req.SealingSecret)
	id, err := store.ParseChallengeID(req.ChallengeID)
	if err != nil {
		return refuse(api.CodeBadRequest, "%v", err)
	}
	now := s.o.now()
	c, err := s.st.ConsumeChallenge(r.Context(), id, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(api.CodeReplay, "challenge %s unknown or already used", id).with("challenge", id.String())
	case errors.Is(err, store.ErrExpired):
		return refuse(api.CodeExpired, "challenge %s expired at %s", id, c.ExpiresAt.Format(time.RFC3339)).with("challenge", id.String(), "ek", c.EK.String())
	case err != nil:
		return storeError("consume challenge", err)
	}
	sum := sha256.Sum256(req.Secret)
	if subtle.ConstantTimeCompare(sum[:], c.SecretHash[:]) != 1 {
		return refuse(api.CodeActivation, "the secret is not the credential's: the identity key is not in the TPM of that EK").with("challenge", id.String(), "ek", c.EK.String())
	}
	switch {
	case c.SealingPublicKey == nil && req.SealingSecret != nil:
		return refuse(api.CodeBadRequest, "a sealing secret for a round without a sealing key").with("challenge", id.String())
	case c.SealingPublicKey != nil:
		ss := sha256.Sum256(req.SealingSecret)
		if req.SealingSecret == nil || subtle.ConstantTimeCompare(ss[:], c.SealingSecretHash[:]) != 1 {
			return refuse(api.CodeSealingKey, "the sealing secret is not the credential's: the sealing key is not in the TPM of that EK").with("challenge", id.String(), "ek", c.EK.String())
		}
	}
	allowed, err := s.st.LookupAllowed(r.Context(), c.EK)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(api.CodeNotAllowed, "this TPM left the allow-list").with("ek", c.EK.String())
	}
	if err != nil {
		return storeError("allow-list", err)
	}
	pub, err := x509.ParsePKIXPublicKey(c.IdentityPublicKey)
	if err != nil {
		return storeError("challenge key", err)
	}
	existing, err := s.st.GetDeviceByEK(r.Context(), c.EK)
	switch {
	case errors.Is(err, store.ErrNotFound):
		d := store.Device{ID: store.NewDeviceID(), Serial: allowed.Serial, Model: allowed.Model, Group: allowed.Group,
			EK: c.EK, IdentityPublicKey: c.IdentityPublicKey, State: store.StateEnrolled, EnrolledAt: now,
			SealingPublicKey: c.SealingPublicKey}
		cert, der, err := s.issue(r, d, pub, now)
		if err != nil {
			return err
		}
		if err := s.st.CreateDevice(r.Context(), d, cert); err != nil {
			return storeError("create device", err).with("ek", c.EK.String())
		}
		s.metrics.add("enrolled")
		s.log.Info("device enrolled", "device", string(d.ID), "serial", d.Serial, "model", d.Model, "group", d.Group,
			"ek", c.EK.String(), "cert_serial", cert.Serial.String(), "not_after", cert.NotAfter)
		s.writeCert(w, d.ID, der, cert)
		s.enrolled(r, d.ID)
		s.registered(r, d.ID)
		return nil
	case err != nil:
		return storeError("look up device", err)
	}
	// The same TPM again: start checked the key; check again, the device
	// may have changed meanwhile.
	if existing.State != store.StateEnrolled || !equalBytes(existing.IdentityPublicKey, c.IdentityPublicKey) {
		return refuse(api.CodeConflict, "this TPM's device %s changed during enrolment", existing.ID).with("device", string(existing.ID))
	}
	cert, der, err := s.issue(r, existing, pub, now)
	if err != nil {
		return err
	}
	if c.SealingPublicKey != nil {
		if err := s.st.SetSealingKey(r.Context(), existing.ID, c.SealingPublicKey); err != nil {
			return storeError("sealing key", err).with("device", string(existing.ID))
		}
	}
	if err := s.st.AddCert(r.Context(), cert); err != nil {
		return storeError("add certificate", err).with("device", string(existing.ID))
	}
	s.metrics.add("reenrolled")
	s.log.Info("device re-enrolled", "device", string(existing.ID), "serial", existing.Serial, "cert_serial", cert.Serial.String())
	s.writeCert(w, existing.ID, der, cert)
	s.enrolled(r, existing.ID)
	s.registered(r, existing.ID)
	return nil
}

// issue signs a certificate for a device record, with a serial from the
// store; nothing is recorded yet.
func (s *Server) issue(r *http.Request, d store.Device, pub any, now time.Time) (store.Cert, []byte, error) {
	serial, err := s.st.NextCertSerial(r.Context())
	if err != nil {
		return store.Cert{}, nil, storeError("certificate serial", err)
	}
	notBefore := now.Add(-ca.Backdate)
	notAfter := now.Add(s.o.certLifetime)
	der, err := s.deviceCA.IssueDevice(ca.DeviceRequest{
		Serial: serial.BigInt(), PublicKey: pub, DeviceID: string(d.ID), DeviceSerial: d.Serial, Group: d.Group,
		NotBefore: notBefore, NotAfter: notAfter,
	})
	if err != nil {
		return store.Cert{}, nil, &refusal{code: api.CodeInternal, msg: "issue certificate: internal error", cause: err}
	}
	return store.Cert{Serial: serial, DeviceID: d.ID, NotBefore: notBefore, NotAfter: notAfter, DER: der}, der, nil
}

func (s *Server) writeCert(w http.ResponseWriter, id store.DeviceID, der []byte, c store.Cert) {
	writeJSON(w, http.StatusOK, api.CertificateResponse{
		DeviceID:   string(id),
		Chain:      [][]byte{der, s.deviceCA.Certificate().Raw},
		NotAfter:   store.NormTime(c.NotAfter),
		RenewAfter: store.NormTime(renewAfter(c.NotBefore, c.NotAfter)),
	})
}

// renewAfter is two-thirds into a certificate's life.
func renewAfter(notBefore, notAfter time.Time) time.Time {
	return notBefore.Add(notAfter.Sub(notBefore) * 2 / 3)
}

func equalBytes(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
