package console

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/console/approval"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
)

// Admin changes: proposed by an admin holding admin.manage, in effect
// only when a second admin holding approval.security approves
// (approval.Approve: not the proposer, not the target). Each step is in
// the audit log before the next: the request (approval.request, pending),
// the approval (approval.grant) before the change is applied, and the
// change itself (admin.create / admin.role / admin.disable) naming both.

// me is the acting admin as a party to a change.
func me(q *req) approval.Party {
	return approval.Party{AdminID: q.info.AdminID, Name: q.info.Name}
}

// changeError maps the approval store's and rule's errors.
func changeError(what string, err error) error {
	switch {
	case errors.Is(err, approval.ErrSamePerson):
		return &refusal{code: consoleapi.CodeSamePerson, reason: "same_person", cause: err,
			msg: what + ": a change needs a second, different admin (not its proposer, not the admin it is about)"}
	case errors.Is(err, approval.ErrNotFound):
		return refuse(consoleapi.CodeNotFound, "not_found", "%s: no such change", what)
	case errors.Is(err, approval.ErrDecided):
		return refuse(consoleapi.CodeConflict, "decided", "%s: the change was decided already", what)
	case errors.Is(err, approval.ErrExpired):
		return refuse(consoleapi.CodeConflict, "expired", "%s: the change expired unapproved", what)
	case errors.Is(err, approval.ErrExists):
		return refuse(consoleapi.CodeConflict, "exists", "%s: exists already", what)
	case errors.Is(err, approval.ErrLimit):
		return &refusal{code: consoleapi.CodeLimit, reason: "limit", msg: what + ": too many pending changes", cause: err}
	case errors.Is(err, approval.ErrInvalid):
		return &refusal{code: consoleapi.CodeBadRequest, reason: "invalid", msg: what + ": " + err.Error(), cause: err}
	}
	return unavailable(what, err)
}

// changeTarget is an audit entry's target for a change.
func changeTarget(ch *approval.Change) string {
	return "admin " + ch.Target.Name
}

func changeDetails(ch *approval.Change) map[string]string {
	d := map[string]string{"change": string(ch.ID), "kind": string(ch.Kind), "proposed_by": ch.ProposedBy.Name,
		"target_id": ch.Target.AdminID}
	if ch.FromRole != "" {
		d["from_role"] = ch.FromRole
	}
	if ch.ToRole != "" {
		d["to_role"] = ch.ToRole
	}
	return d
}

// propose stores ch as pending and records the request. A request the
// log cannot record is withdrawn at once: nothing unrecorded can be
// approved.
func (c *Console) propose(q *req, ch approval.Change) (approval.Change, error) {
	if err := c.approvals.Create(q.ctx, ch); err != nil {
		return ch, changeError("propose", err)
	}
	e := entry(q, audit.ActionApprovalRequest, audit.OutcomePending, changeTarget(&ch), changeDetails(&ch))
	e.Approvals = []string{string(ch.ID)}
	idx, err := c.rec.record(q.ctx, e)
	if err != nil {
		werr := c.approvals.Update(context.WithoutCancel(q.ctx), ch.ID, func(x *approval.Change) error {
			return approval.Refuse(x, me(q), "withdrawn: the audit log did not record the request", c.o.now())
		})
		if werr != nil {
			c.logger.Error("unrecorded change not withdrawn", "change", ch, "err", werr)
		}
		return ch, unavailable("propose", err)
	}
	ch.RequestEntry = idx
	if err := c.approvals.Update(q.ctx, ch.ID, func(x *approval.Change) error { x.RequestEntry = idx; return nil }); err != nil {
		// The entry is in the log; the reference is a convenience.
		c.logger.Warn("change's audit reference not stored", "change", ch, "err", err)
	}
	return ch, nil
}

// minSecurityAdmins is how many enabled security admins the fleet keeps:
// with fewer, no admin change could ever be approved again (the two-person
// rule needs a second one).
const minSecurityAdmins = 2

// keepsApprovers refuses a change that would leave fewer than
// minSecurityAdmins enabled security admins.
func (c *Console) keepsApprovers(q *req, target adminauth.Admin, kind approval.Kind, toRole string) error {
	if target.Role != adminauth.RoleSecurityAdmin || target.Disabled ||
		(kind == approval.KindAdminRole && toRole == string(adminauth.RoleSecurityAdmin)) {
		return nil
	}
	as, err := c.admins.ListAdmins(q.ctx, adminauth.MaxListAdmins)
	if err != nil {
		return unavailable("admins", err)
	}
	n := 0
	for _, a := range as {
		if a.Role == adminauth.RoleSecurityAdmin && !a.Disabled {
			n++
		}
	}
	if n <= minSecurityAdmins {
		return refuse(consoleapi.CodeConflict, "last_approvers",
			"the fleet would keep fewer than %d enabled security admins, and no admin change could be approved again", minSecurityAdmins)
	}
	return nil
}

// proposeAdmin proposes a new admin with a password (hashed here, never
// stored in clear) and a role.
func (c *Console) proposeAdmin(q *req, name, role, password string) (approval.Change, error) {
	n, err := adminauth.NormalizeName(name)
	if err != nil {
		return approval.Change{}, refuse(consoleapi.CodeBadRequest, "invalid", "name: 1 to %d of a-z 0-9 . _ @ -", adminauth.MaxNameLen)
	}
	r := adminauth.Role(role)
	if !r.Valid() {
		return approval.Change{}, refuse(consoleapi.CodeBadRequest, "invalid", "role %q unknown", role)
	}
	if len(password) < c.o.minPassword || len(password) > adminauth.MaxPasswordLen {
		return approval.Change{}, refuse(consoleapi.CodeBadRequest, "invalid", "password: %d to %d bytes", c.o.minPassword, adminauth.MaxPasswordLen)
	}
	switch _, err := c.admins.AdminByName(q.ctx, n); {
	case err == nil:
		return approval.Change{}, refuse(consoleapi.CodeConflict, "exists", "an admin named %s exists", n)
	case !errors.Is(err, adminauth.ErrNotFound):
		return approval.Change{}, unavailable("propose admin", err)
	}
	h, err := c.o.hasher.Hash(q.ctx, password)
	if err != nil {
		return approval.Change{}, authError(err)
	}
	ch := approval.NewChange(approval.KindAdminCreate, me(q), approval.Party{AdminID: adminauth.NewAdminID(), Name: n},
		c.o.now(), c.o.lifetime)
	ch.ToRole, ch.PasswordHash = string(r), h
	return c.propose(q, ch)
}

// target loads the admin a change is about.
func (c *Console) target(q *req, id string) (adminauth.Admin, error) {
	ad, err := c.admins.AdminByID(q.ctx, id)
	if errors.Is(err, adminauth.ErrNotFound) || errors.Is(err, adminauth.ErrInvalid) {
		return ad, refuse(consoleapi.CodeNotFound, "not_found", "no such admin")
	}
	if err != nil {
		return ad, unavailable("admin", err)
	}
	return ad, nil
}

func (c *Console) proposeRole(q *req, id, role string) (approval.Change, error) {
	ad, err := c.target(q, id)
	if err != nil {
		return approval.Change{}, err
	}
	r := adminauth.Role(role)
	if !r.Valid() {
		return approval.Change{}, refuse(consoleapi.CodeBadRequest, "invalid", "role %q unknown", role)
	}
	if r == ad.Role {
		return approval.Change{}, refuse(consoleapi.CodeConflict, "unchanged", "%s is %s already", ad.Name, r)
	}
	if err := c.keepsApprovers(q, ad, approval.KindAdminRole, string(r)); err != nil {
		return approval.Change{}, err
	}
	ch := approval.NewChange(approval.KindAdminRole, me(q), approval.Party{AdminID: ad.ID, Name: ad.Name}, c.o.now(), c.o.lifetime)
	ch.FromRole, ch.ToRole = string(ad.Role), string(r)
	return c.propose(q, ch)
}

func (c *Console) proposeDisable(q *req, id string) (approval.Change, error) {
	ad, err := c.target(q, id)
	if err != nil {
		return approval.Change{}, err
	}
	if ad.Disabled {
		return approval.Change{}, refuse(consoleapi.CodeConflict, "unchanged", "%s is disabled already", ad.Name)
	}
	if err := c.keepsApprovers(q, ad, approval.KindAdminDisable, ""); err != nil {
		return approval.Change{}, err
	}
	return c.propose(q, approval.NewChange(approval.KindAdminDisable, me(q), approval.Party{AdminID: ad.ID, Name: ad.Name},
		c.o.now(), c.o.lifetime))
}

// stillValid refuses to approve a change whose grounds are gone: its
// proposer no longer may propose it, or the admin it is about changed
// since (a stale proposal is refused and proposed again).
func (c *Console) stillValid(q *req, ch *approval.Change) error {
	p, err := c.admins.AdminByID(q.ctx, ch.ProposedBy.AdminID)
	if err != nil && !errors.Is(err, adminauth.ErrNotFound) {
		return unavailable("approve", err)
	}
	if err != nil || p.Disabled || adminauth.Check(p.Role, adminauth.PermAdminManage, c.o.now()) != nil {
		return refuse(consoleapi.CodeConflict, "proposer_gone", "its proposer %s no longer may propose admin changes; refuse it", ch.ProposedBy.Name)
	}
	if ch.Kind == approval.KindAdminCreate {
		switch _, err := c.admins.AdminByName(q.ctx, ch.Target.Name); {
		case err == nil:
			return refuse(consoleapi.CodeConflict, "stale", "an admin named %s exists now; refuse it", ch.Target.Name)
		case !errors.Is(err, adminauth.ErrNotFound):
			return unavailable("approve", err)
		}
		return nil
	}
	t, err := c.target(q, ch.Target.AdminID)
	if err != nil {
		return err
	}
	if ch.Kind == approval.KindAdminRole && string(t.Role) != ch.FromRole {
		return refuse(consoleapi.CodeConflict, "stale", "%s is %s now, not %s as proposed; refuse it", t.Name, t.Role, ch.FromRole)
	}
	if ch.Kind == approval.KindAdminDisable && t.Disabled {
		return refuse(consoleapi.CodeConflict, "stale", "%s is disabled already; refuse it", t.Name)
	}
	// Two such changes proposed together must not both pass.
	return c.keepsApprovers(q, t, ch.Kind, ch.ToRole)
}

// approve is the second admin's approval: the rule and the decision in
// one atomic store update, recorded, then applied, then the outcome
// recorded.
//
// It runs under the admin store's exclusive lock when the store has one
// (boltauth, pgauth): two approvals applied at once must not both pass
// the check that keeps two security admins, nor race a bootstrap.
func (c *Console) approve(q *req, id approval.ID) (approval.Change, error) {
	x, ok := c.admins.(adminauth.Exclusive)
	if !ok {
		return c.approveLocked(q, id)
	}
	var ch approval.Change
	var err error
	if xerr := x.Exclusive(q.ctx, func(context.Context) error {
		ch, err = c.approveLocked(q, id)
		return nil
	}); xerr != nil {
		return ch, unavailable("approve", xerr)
	}
	return ch, err
}

func (c *Console) approveLocked(q *req, id approval.ID) (approval.Change, error) {
	ch, err := c.approvals.Get(q.ctx, id)
	if err != nil {
		return ch, changeError("approve", err)
	}
	if err := c.stillValid(q, &ch); err != nil {
		return ch, err
	}
	err = c.approvals.Update(q.ctx, id, func(x *approval.Change) error {
		if err := approval.Approve(x, me(q), c.o.now()); err != nil {
			return err
		}
		ch = *x
		return nil
	})
	if err != nil {
		rf := changeError("approve", err)
		if errors.Is(err, approval.ErrSamePerson) {
			// The refused self-approval is itself worth recording.
			e := entry(q, audit.ActionApprovalGrant, audit.OutcomeDenied, changeTarget(&ch), changeDetails(&ch))
			e.Approvals = []string{string(id)}
			e.Details["reason"] = "same_person"
			c.add(q, e)
			rf.(*refusal).audited = true
		}
		return ch, rf
	}
	refs := []string{string(ch.ID)}
	if ch.RequestEntry >= 0 {
		refs = append(refs, "request#"+strconv.FormatInt(ch.RequestEntry, 10))
	}
	e := entry(q, audit.ActionApprovalGrant, audit.OutcomeSuccess, changeTarget(&ch), changeDetails(&ch))
	e.Approvals = refs
	grant, err := c.rec.record(q.ctx, e)
	if err != nil {
		c.finish(q, &ch, errors.New("not applied: the audit log did not record the approval"))
		return ch, unavailable("approve", err)
	}
	applyErr := c.apply(q.ctx, &ch)
	c.finish(q, &ch, applyErr)
	out := audit.OutcomeSuccess
	if applyErr != nil {
		out = audit.OutcomeFailure
	}
	ea := entry(q, effect(ch.Kind), out, changeTarget(&ch), changeDetails(&ch))
	ea.Details["approved_by"] = ch.DecidedBy.Name
	if applyErr != nil {
		ea.Details["error"] = applyErr.Error()
	}
	ea.Approvals = append(refs, "grant#"+strconv.FormatInt(grant, 10))
	if _, err := c.rec.record(q.ctx, ea); err != nil {
		c.logger.Error("applied change not recorded", "change", ch, "err", err)
	}
	if applyErr != nil {
		if errors.Is(applyErr, adminauth.ErrExists) {
			return ch, refuse(consoleapi.CodeConflict, "exists", "approved, but not applied: %v", applyErr)
		}
		return ch, internal("apply change", applyErr)
	}
	return ch, nil
}

func effect(k approval.Kind) audit.Action {
	switch k {
	case approval.KindAdminCreate:
		return audit.ActionAdminCreate
	case approval.KindAdminRole:
		return audit.ActionAdminRole
	}
	return audit.ActionAdminDisable
}

// apply makes an approved change take effect.
func (c *Console) apply(ctx context.Context, ch *approval.Change) error {
	ctx = context.WithoutCancel(ctx) // approved: finish it even if the client left
	switch ch.Kind {
	case approval.KindAdminCreate:
		return c.admins.CreateAdmin(ctx, adminauth.Admin{ID: ch.Target.AdminID, Name: ch.Target.Name,
			Role: adminauth.Role(ch.ToRole), PasswordHash: ch.PasswordHash, CreatedAt: c.o.now().UTC()})
	case approval.KindAdminRole:
		return c.auth.SetRole(ctx, ch.Target.AdminID, adminauth.Role(ch.ToRole))
	case approval.KindAdminDisable:
		return c.auth.SetDisabled(ctx, ch.Target.AdminID, true)
	}
	return fmt.Errorf("change kind %q: %w", ch.Kind, approval.ErrInvalid)
}

// finish stores an approved change's outcome (applied or failed).
func (c *Console) finish(q *req, ch *approval.Change, applyErr error) {
	err := c.approvals.Update(context.WithoutCancel(q.ctx), ch.ID, func(x *approval.Change) error {
		if err := approval.Finish(x, applyErr); err != nil {
			return err
		}
		*ch = *x
		return nil
	})
	if err != nil {
		c.logger.Error("change outcome not stored", "change", *ch, "err", err)
	}
}

// refuseChange refuses (or, by its proposer, withdraws) a pending change.
func (c *Console) refuseChange(q *req, id approval.ID, reason string) (approval.Change, error) {
	var ch approval.Change
	err := c.approvals.Update(q.ctx, id, func(x *approval.Change) error {
		if err := approval.Refuse(x, me(q), reason, c.o.now()); err != nil {
			return err
		}
		ch = *x
		return nil
	})
	if err != nil {
		return ch, changeError("refuse", err)
	}
	e := entry(q, audit.ActionApprovalRefuse, audit.OutcomeSuccess, changeTarget(&ch), changeDetails(&ch))
	e.Approvals = []string{string(ch.ID)}
	if ch.Reason != "" {
		e.Details["reason"] = ch.Reason
	}
	if _, err := c.rec.record(q.ctx, e); err != nil {
		c.logger.Error("refusal of a change not recorded", "change", ch, "err", err)
	}
	return ch, nil
}
