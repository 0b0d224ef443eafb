package server

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/store"
)

// importAllowList imports vendor manifest entries, all or none.
func (s *Server) importAllowList(w http.ResponseWriter, r *http.Request, admin string) error {
	var req importRequest
	if err := decode(w, r, api.MaxImportBody, &req); err != nil {
		return err
	}
	now := s.o.now()
	entries := make([]store.AllowEntry, 0, len(req.Entries))
	for i, e := range req.Entries {
		ek, err := store.ParseEKHash(strings.ToLower(e.EKSHA256))
		if err != nil {
			return refuse(api.CodeBadRequest, "entry %d: %v", i, err)
		}
		entries = append(entries, store.AllowEntry{EK: ek, Serial: e.Serial, Model: e.Model, Group: e.Group, ImportedAt: now})
	}
	res, err := s.st.ImportAllowList(r.Context(), entries)
	if err != nil {
		return storeError("import", err)
	}
	note(r, "entries", strconv.Itoa(len(entries)))
	note(r, "added", strconv.Itoa(res.Added))
	note(r, "updated", strconv.Itoa(res.Updated))
	s.log.Info("allow-list imported", "admin", admin, "added", res.Added, "updated", res.Updated, "unchanged", res.Unchanged)
	writeJSON(w, http.StatusOK, api.ImportResponse{Added: res.Added, Updated: res.Updated, Unchanged: res.Unchanged})
	return nil
}

// importRequest validates the size of an import before the store sees it.
type importRequest api.ImportRequest

func (r *importRequest) Validate() error {
	if len(r.Entries) == 0 || len(r.Entries) > api.MaxImportEntries {
		return refuse(api.CodeBadRequest, "%d entries, want 1..%d", len(r.Entries), api.MaxImportEntries)
	}
	return nil
}

// page reads ?after= and ?limit= (default and maximum api.MaxPageSize).
func page(r *http.Request) (store.PageRequest, error) {
	p := store.PageRequest{After: r.URL.Query().Get("after"), Limit: api.MaxPageSize}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > api.MaxPageSize {
			return p, refuse(api.CodeBadRequest, "limit %.16q, want 1..%d", l, api.MaxPageSize)
		}
		p.Limit = n
	}
	if err := p.Validate(); err != nil {
		return p, refuse(api.CodeBadRequest, "%v", err)
	}
	return p, nil
}

func (s *Server) listAllowList(w http.ResponseWriter, r *http.Request, _ string) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	pg, err := s.st.ListAllowed(r.Context(), p)
	if err != nil {
		return storeError("list allow-list", err)
	}
	out := api.AllowListPage{Entries: []api.AllowEntry{}, Next: pg.Next}
	for _, e := range pg.Items {
		out.Entries = append(out.Entries, api.AllowEntry{EKSHA256: e.EK.String(), Serial: e.Serial, Model: e.Model, Group: e.Group, ImportedAt: e.ImportedAt})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, _ string) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	pg, err := s.st.ListDevices(r.Context(), p)
	if err != nil {
		return storeError("list devices", err)
	}
	out := api.InventoryPage{Devices: []api.Device{}, Next: pg.Next}
	for _, d := range pg.Items {
		ad, err := s.deviceView(r, d)
		if err != nil {
			return err
		}
		out.Devices = append(out.Devices, ad)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deviceView is a device with the firmware of its last report.
func (s *Server) deviceView(r *http.Request, d store.Device) (api.Device, error) {
	ad := api.Device{ID: string(d.ID), Serial: d.Serial, Model: d.Model, Group: d.Group, EKSHA256: d.EK.String(),
		State: string(d.State), EnrolledAt: d.EnrolledAt, StateChangedAt: d.StateChangedAt, LastSeen: d.LastSeen,
		CertSerial: d.CurrentCertSerial.String(), CertNotAfter: d.CertNotAfter}
	ad.SealingKey = d.SealingPublicKey != nil
	rep, err := s.st.LatestReport(r.Context(), d.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return ad, storeError("latest report", err)
	default:
		ok := rep.Lockdown.OK
		ad.Firmware, ad.SecurityVersion, ad.LockdownOK = rep.Firmware.Version, rep.Firmware.SecurityVersion, &ok
		// What the phone signed says how its provisioning is.
		if full, err := api.ParseReport(rep.Signed); err == nil && full.Provisioning != nil {
			p := full.Provisioning
			ad.ConfigVersion, ad.Stale, ad.StaleRole = p.ConfigVersion, p.Stale, p.StaleRole
		}
	}
	return ad, nil
}

func deviceID(r *http.Request) (store.DeviceID, error) {
	id := store.DeviceID(r.PathValue("id"))
	if err := id.Validate(); err != nil {
		return "", refuse(api.CodeBadRequest, "%v", err)
	}
	return id, nil
}

func (s *Server) showDevice(w http.ResponseWriter, r *http.Request, _ string) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	d, err := s.st.GetDevice(r.Context(), id)
	if err != nil {
		return storeError("device", err)
	}
	ad, err := s.deviceView(r, d)
	if err != nil {
		return err
	}
	certs, err := s.st.ListDeviceCerts(r.Context(), id, 100)
	if err != nil {
		return storeError("certificates", err)
	}
	reps, err := s.st.ReportHistory(r.Context(), id, store.MaxReportHistory)
	if err != nil {
		return storeError("reports", err)
	}
	out := api.DeviceDetail{Device: ad, Certs: []api.Cert{}, Reports: []api.StoredReport{}}
	for _, c := range certs {
		out.Certs = append(out.Certs, api.Cert{Serial: c.Serial.String(), NotBefore: c.NotBefore, NotAfter: c.NotAfter, RevokedAt: c.RevokedAt, Reason: int(c.Reason)})
	}
	for _, sr := range reps {
		// What the device signed is the record; the parse shows it.
		rep, err := api.ParseReport(sr.Signed)
		if err != nil {
			return storeError("stored report", err)
		}
		out.Reports = append(out.Reports, api.StoredReport{ReceivedAt: sr.ReceivedAt, Report: rep, Signed: sr.Signed})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

var reasons = map[string]store.RevocationReason{
	api.ReasonUnspecified:          store.ReasonUnspecified,
	api.ReasonKeyCompromise:        store.ReasonKeyCompromise,
	api.ReasonAffiliationChanged:   store.ReasonAffiliationChanged,
	api.ReasonSuperseded:           store.ReasonSuperseded,
	api.ReasonCessationOfOperation: store.ReasonCessationOfOperation,
	api.ReasonPrivilegeWithdrawn:   store.ReasonPrivilegeWithdrawn,
}

// stateChangeRequest validates the reason.
type stateChangeRequest api.StateChangeRequest

func (r *stateChangeRequest) Validate() error {
	if _, ok := reasons[r.Reason]; r.Reason != "" && !ok {
		return refuse(api.CodeBadRequest, "reason %.40q unknown", r.Reason)
	}
	return nil
}

func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request, admin string) error {
	return s.changeState(w, r, admin, store.StateRevoked, api.ReasonUnspecified)
}

func (s *Server) retireDevice(w http.ResponseWriter, r *http.Request, admin string) error {
	return s.changeState(w, r, admin, store.StateRetired, api.ReasonCessationOfOperation)
}

// changeState revokes or retires a device: the store revokes its
// certificates in the same transaction, then every replica is told to
// reissue its CRL. Doing it again is harmless (and finishes a CRL update
// an earlier attempt could not).
func (s *Server) changeState(w http.ResponseWriter, r *http.Request, admin string, to store.DeviceState, defReason string) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	var req stateChangeRequest
	if err := decode(w, r, api.MaxRequestBody, &req); err != nil {
		return err
	}
	name := req.Reason
	if name == "" {
		name = defReason
	}
	note(r, "reason", name)
	if err := s.st.SetDeviceState(r.Context(), id, to, reasons[name], s.o.now()); err != nil {
		return storeError(string(to), err).with("device", string(id))
	}
	s.log.Info("device "+string(to), "device", string(id), "admin", admin, "reason", name)
	if s.dir != nil {
		// Its registrar accounts go now; the worker retries a failure.
		if err := s.dir.Retired(r.Context(), id); err != nil {
			s.log.Warn("director: device left the fleet", "device", string(id), "err", err)
		}
	}
	if err := s.revoked(r); err != nil {
		return err
	}
	d, err := s.st.GetDevice(r.Context(), id)
	if err != nil {
		return storeError("device", err)
	}
	ad, err := s.deviceView(r, d)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ad)
	return nil
}

// settings admins may read and change, each with its check.
var settings = map[string]func(string) error{
	api.SettingMinSecurityVersion: func(v string) error {
		if _, err := strconv.ParseUint(v, 10, 63); err != nil {
			return refuse(api.CodeBadRequest, "min_security_version %.32q: want a decimal integer below 2^63", v)
		}
		return nil
	},
}

func settingKey(r *http.Request) (store.SettingKey, func(string) error, error) {
	k := r.PathValue("key")
	check, ok := settings[k]
	if !ok {
		return "", nil, refuse(api.CodeNotFound, "setting %.64q unknown", k)
	}
	return store.SettingKey(k), check, nil
}

func (s *Server) getSetting(w http.ResponseWriter, r *http.Request, _ string) error {
	k, _, err := settingKey(r)
	if err != nil {
		return err
	}
	v, err := s.st.Setting(r.Context(), k)
	if err != nil {
		return storeError("setting", err)
	}
	writeJSON(w, http.StatusOK, api.SettingValue{Value: v})
	return nil
}

// settingValue validates a setting body's presence.
type settingValue api.SettingValue

func (v *settingValue) Validate() error {
	if v.Value == "" {
		return refuse(api.CodeBadRequest, "empty value (DELETE the setting instead)")
	}
	return nil
}

func (s *Server) putSetting(w http.ResponseWriter, r *http.Request, admin string) error {
	k, check, err := settingKey(r)
	if err != nil {
		return err
	}
	var v settingValue
	if err := decode(w, r, api.MaxRequestBody, &v); err != nil {
		return err
	}
	if err := check(v.Value); err != nil {
		return err
	}
	note(r, "value", v.Value)
	if err := s.st.SetSetting(r.Context(), k, v.Value); err != nil {
		return storeError("setting", err)
	}
	s.log.Info("setting changed", "key", string(k), "value", v.Value, "admin", admin)
	writeJSON(w, http.StatusOK, api.SettingValue(v))
	return nil
}

func (s *Server) deleteSetting(w http.ResponseWriter, r *http.Request, admin string) error {
	k, _, err := settingKey(r)
	if err != nil {
		return err
	}
	note(r, "value", "deleted")
	if err := s.st.DeleteSetting(r.Context(), k); err != nil {
		return storeError("setting", err)
	}
	s.log.Info("setting deleted", "key", string(k), "admin", admin)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
