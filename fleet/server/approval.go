package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/rollout"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// Approvals made real in the signatures: an admin registers the public
// half of a key the director root lists for targets (proving possession
// of the private half, which stays on the admin's machine), reads a
// rollout's staged targets, and uploads detached signatures over them;
// the engine verifies each over exactly that device's staged metadata.

func (s *Server) stagedRollout(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := s.needRollouts(); err != nil {
		return err
	}
	id, err := rolloutID(r)
	if err != nil {
		return err
	}
	pg, err := page(r)
	if err != nil {
		return err
	}
	if pg.Limit > api.MaxStagedPage {
		pg.Limit = api.MaxStagedPage
	}
	devs, next, total, err := s.rollouts.Staged(r.Context(), id, pg.After, pg.Limit)
	if err != nil {
		return rolloutError("staged", err)
	}
	out := api.StagedPage{Rollout: string(id), Devices: []api.StagedDevice{}, Next: next, Total: total}
	for _, d := range devs {
		sd := api.StagedDevice{Device: string(d.Device), Unchanged: d.Unchanged, Override: string(d.Override), GroupConfig: string(d.Group)}
		if st := d.Staged; st != nil && !st.Unchanged {
			sd.Forward = &api.StagedTargets{Targets: st.Forward.Targets, Config: st.Forward.Config}
			sd.Revert = &api.StagedTargets{Targets: st.Revert.Targets, Config: st.Revert.Config}
		}
		out.Devices = append(out.Devices, sd)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type signatureUpload api.SignatureUpload

func (u *signatureUpload) Validate() error { return (*api.SignatureUpload)(u).Validate() }

func (s *Server) signRollout(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := s.needRollouts(); err != nil {
		return err
	}
	id, err := rolloutID(r)
	if err != nil {
		return err
	}
	if err := s.approvalPermission(r, id); err != nil {
		s.denied(r.Context(), p, "approval.grant", "rollout "+string(id), err)
		return err
	}
	var up signatureUpload
	if err := decode(w, r, api.MaxSignatureBody, &up); err != nil {
		return err
	}
	sigs := make([]rollout.DeviceSignature, 0, len(up.Devices))
	for _, d := range up.Devices {
		dev := store.DeviceID(d.Device)
		if err := dev.Validate(); err != nil {
			return refuse(api.CodeBadRequest, "%v", err)
		}
		sigs = append(sigs, rollout.DeviceSignature{Device: dev, Forward: d.Forward, Revert: d.Revert})
	}
	v, err := s.rollouts.Sign(r.Context(), id, actor(p), up.KeyID, sigs)
	if err != nil {
		s.denied(r.Context(), p, "approval.grant", "rollout "+string(id), err)
		return rolloutError("signatures", err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

type approverKeyRequest api.ApproverKeyRequest

func (q *approverKeyRequest) Validate() error { return (*api.ApproverKeyRequest)(q).Validate() }

// registerApproverKey binds the calling admin to an approval key: a
// targets key of the director root (not the server's online key), proved
// by a signature over ProofMessage(fleet, admin, key ID). One key per
// admin, one admin per key.
func (s *Server) registerApproverKey(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := s.needRollouts(); err != nil {
		return err
	}
	var req approverKeyRequest
	if err := decode(w, r, api.MaxRequestBody, &req); err != nil {
		return err
	}
	k, err := tufrepo.ParsePublicDER(req.PublicKey)
	if err != nil {
		return refuse(api.CodeBadRequest, "%v", err)
	}
	refused := func(err error) error {
		s.denied(r.Context(), p, "key.change", "approver key "+k.ID(), err)
		return refuseErr(api.CodeForbidden, err, "approver key refused")
	}
	if _, err := s.dir.Director().ApproverKey(k.ID()); err != nil {
		return refused(err)
	}
	if err := tufrepo.VerifyProof(k, tufrepo.ProofMessage(s.fleetName, p.name, k.ID()), req.Proof); err != nil {
		return refused(err)
	}
	rs, ok := s.st.(store.RolloutStore)
	if !ok {
		return refuse(api.CodeNotConfigured, "the store keeps no approver keys")
	}
	now := s.o.now()
	if err := rs.PutApproverKey(r.Context(), store.ApproverKey{KeyID: k.ID(), Admin: p.name, PublicKey: req.PublicKey, RegisteredAt: now}); err != nil {
		if errors.Is(err, store.ErrExists) {
			return refused(err)
		}
		return storeError("approver key", err)
	}
	if s.auditLog != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		e := audit.Entry{Actor: audit.Actor{Kind: audit.ActorAdmin, ID: p.name}, Action: audit.ActionKeyChange, Target: "approver key " + k.ID(),
			Outcome: audit.OutcomeSuccess, Source: p.addr, Details: map[string]string{"change": "approver key registered"}}
		if _, err := s.auditLog.Append(ctx, e); err != nil {
			s.log.Error("audit entry not written", "action", "key.change", "err", err)
		}
	}
	s.log.Info("approver key registered", "admin", p.name, "key_id", k.ID())
	writeJSON(w, http.StatusCreated, api.ApproverKey{KeyID: k.ID(), Admin: p.name, RegisteredAt: store.NormTime(now)})
	return nil
}

func (s *Server) listApproverKeys(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := s.needRollouts(); err != nil {
		return err
	}
	rs, ok := s.st.(store.RolloutStore)
	if !ok {
		return refuse(api.CodeNotConfigured, "the store keeps no approver keys")
	}
	ks, err := rs.ListApproverKeys(r.Context())
	if err != nil {
		return storeError("approver keys", err)
	}
	out := api.ApproverKeyList{Keys: []api.ApproverKey{}, Fleet: s.fleetName, Needed: s.rollouts.SignaturesNeeded()}
	for _, k := range ks {
		out.Keys = append(out.Keys, api.ApproverKey{KeyID: k.KeyID, Admin: k.Admin, RegisteredAt: k.RegisteredAt})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
