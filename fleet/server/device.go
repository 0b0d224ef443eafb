package server

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/store"
)

// renew issues a new certificate for the same identity key over mutual
// TLS with the current one (the handshake is the fresh proof of
// possession of the TPM key), if the device is live and passes the
// posture gate.
func (s *Server) renew(w http.ResponseWriter, r *http.Request) error {
	p, err := s.device(r)
	if err != nil {
		return err
	}
	if err := p.live(); err != nil {
		return err
	}
	var req api.RenewRequest
	if err := decode(w, r, api.MaxRequestBody, &req); err != nil {
		return err
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return refuse(api.CodeBadRequest, "CSR does not parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return refuse(api.CodeBadRequest, "CSR signature: %v", err)
	}
	if !p.key.Equal(csr.PublicKey) {
		return refuse(api.CodeIdentityKey, "the CSR's key is not the device's identity key").with("device", string(p.device.ID))
	}
	findings, err := s.posture(r, p.device.ID)
	if err != nil {
		return err
	}
	if len(findings) > 0 {
		return refuse(api.CodePosture, "renewal refused: %s", joinFindings(findings)).with("device", string(p.device.ID))
	}
	if err := s.quarantined(r, p.device.ID); err != nil {
		return err
	}
	now := s.o.now()
	cert, der, err := s.issue(r, p.device, p.key, now)
	if err != nil {
		return err
	}
	if err := s.st.AddCert(r.Context(), cert); err != nil {
		if errors.Is(err, store.ErrState) {
			// Revoked or retired between the check and the write.
			return refuse(api.CodeRevoked, "device %s is no longer enrolled", p.device.ID).with("device", string(p.device.ID))
		}
		return storeError("add certificate", err).with("device", string(p.device.ID))
	}
	s.metrics.add("renewed")
	s.registered(r, p.device.ID)
	s.log.Info("certificate renewed", "device", string(p.device.ID), "cert_serial", cert.Serial.String(), "not_after", cert.NotAfter)
	s.writeCert(w, p.device.ID, der, cert)
	return nil
}

// posture returns why the device may not renew now: its last report shows
// firmware below the fleet's minimum security version, or lockdown drift;
// with a minimum set, no report at all is a finding too.
func (s *Server) posture(r *http.Request, id store.DeviceID) ([]string, error) {
	minSV, haveMin, err := store.SettingUint(r.Context(), s.st, store.SettingMinSecurityVersion)
	if err != nil {
		return nil, storeError("minimum security version", err)
	}
	rep, err := s.st.LatestReport(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		if haveMin {
			return []string{fmt.Sprintf("no check-in report yet (the fleet requires security version %d)", minSV)}, nil
		}
		return nil, nil
	}
	if err != nil {
		return nil, storeError("latest report", err)
	}
	f := postureOf(rep, minSV, haveMin)
	// A report the phone sent long ago says little about it now: with a
	// minimum set, the gate wants one from the last two polling
	// intervals (the phone checks in before it renews).
	if maxAge := 2*s.o.checkInInterval + time.Minute; haveMin && s.o.now().Sub(rep.ReceivedAt) > maxAge {
		f = append(f, fmt.Sprintf("last check-in report is older than %v", maxAge))
	}
	return f, nil
}

func postureOf(rep store.Report, minSV uint64, haveMin bool) []string {
	var f []string
	if haveMin && rep.Firmware.SecurityVersion < minSV {
		f = append(f, fmt.Sprintf("firmware %s has security version %d, below the fleet's minimum %d",
			rep.Firmware.Version, rep.Firmware.SecurityVersion, minSV))
	}
	if !rep.Lockdown.OK {
		f = append(f, fmt.Sprintf("lockdown drift (%d findings)", len(rep.Lockdown.Findings)))
	}
	return f
}

func joinFindings(f []string) string {
	out := ""
	for i, s := range f {
		if i > 0 {
			out += "; "
		}
		out += s
	}
	return out
}

// checkIn stores a report the identity key signed and says what the phone
// should do next. A retired device is told to wipe its credentials (and
// its report is not kept); a revoked one is refused.
func (s *Server) checkIn(w http.ResponseWriter, r *http.Request) error {
	p, err := s.device(r)
	if err != nil {
		return err
	}
	if p.device.State == store.StateRetired {
		s.metrics.add("retire_sent")
		s.log.Info("retired device checked in: told to wipe", "device", string(p.device.ID))
		writeJSON(w, http.StatusOK, api.CheckInResponse{Action: api.ActionRetire, NextCheckInSeconds: s.interval()})
		return nil
	}
	if err := p.live(); err != nil {
		return err
	}
	body, err := readBody(w, r, api.MaxReport)
	if err != nil {
		return err
	}
	if err := api.VerifyReport(p.key, body, r.Header.Get(api.SignatureHeader)); err != nil {
		return refuse(api.CodeBadRequest, "%v", err).with("device", string(p.device.ID))
	}
	rep, err := api.ParseReport(body)
	if err != nil {
		return refuse(api.CodeBadRequest, "%v", err).with("device", string(p.device.ID))
	}
	if rep.DeviceID != string(p.device.ID) || rep.Serial != p.device.Serial || rep.Model != p.device.Model {
		return refuse(api.CodeBadRequest, "report is for device %.40q serial %.64q model %.64q, not this one",
			rep.DeviceID, rep.Serial, rep.Model).with("device", string(p.device.ID))
	}
	now := s.o.now()
	if d := rep.SentAt.Sub(now); d > api.MaxClockSkew || d < -api.MaxClockSkew {
		return refuse(api.CodeStale, "report sent at %s, %v from the server's clock (at most %v)",
			rep.SentAt.Format(time.RFC3339), d.Round(time.Second), api.MaxClockSkew).with("device", string(p.device.ID))
	}
	prev, err := s.st.LatestReport(r.Context(), p.device.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return storeError("latest report", err)
	default:
		if last, err := api.ParseReport(prev.Signed); err == nil && !rep.SentAt.After(last.SentAt) {
			return refuse(api.CodeStale, "report sent at %s, not after the last one (%s)",
				rep.SentAt.Format(time.RFC3339Nano), last.SentAt.Format(time.RFC3339Nano)).with("device", string(p.device.ID))
		}
	}
	sr := storeReport(rep, body, now)
	if err := s.st.PutReport(r.Context(), p.device.ID, sr); err != nil {
		return storeError("store report", err).with("device", string(p.device.ID))
	}
	s.metrics.add("checked_in")
	if s.dir != nil && rep.Provisioning != nil {
		// The report is stored whatever the director makes of it; a
		// confirmation that fails is taken again at the next check-in.
		if err := s.dir.Reported(r.Context(), p.device.ID, rep.Provisioning); err != nil {
			s.log.Warn("director: check-in report", "device", string(p.device.ID), "err", err)
		}
	}
	minSV, haveMin, err := store.SettingUint(r.Context(), s.st, store.SettingMinSecurityVersion)
	if err != nil {
		return storeError("minimum security version", err)
	}
	resp := api.CheckInResponse{Action: api.ActionNone, NextCheckInSeconds: s.interval(), Posture: postureOf(sr, minSV, haveMin)}
	// The certificate the phone uses now is the one to judge: an older
	// one still valid may be in use while a renewal's answer was lost.
	if !now.Before(renewAfter(p.leaf.NotBefore, p.leaf.NotAfter)) {
		resp.Action = api.ActionRenew
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) interval() uint32 { return uint32(s.o.checkInInterval / time.Second) }

// storeReport converts a parsed report for the store.
func storeReport(rep api.Report, body []byte, now time.Time) store.Report {
	sr := store.Report{
		ReceivedAt:   now,
		Firmware:     store.FirmwareVersion{Version: rep.Firmware.Version, SecurityVersion: rep.Firmware.SecurityVersion},
		Boot:         store.BootState{Slot: rep.Boot.Slot, AttemptsLeft: rep.Boot.AttemptsLeft, MarkedGood: rep.Boot.MarkedGood},
		CertNotAfter: rep.CertNotAfter,
		Lockdown:     store.LockdownResult{OK: rep.Lockdown.OK, Findings: rep.Lockdown.Findings},
		Counters:     rep.Counters,
		Uptime:       time.Duration(min(rep.UptimeSeconds, uint64(1<<62)/uint64(time.Second))) * time.Second,
		Signed:       body,
	}
	for _, sl := range rep.Slots {
		sr.Slots = append(sr.Slots, store.SlotReport{Name: sl.Name, Version: sl.Version, SecurityVersion: sl.SecurityVersion, Booted: sl.Booted, Good: sl.Good})
	}
	return sr
}
