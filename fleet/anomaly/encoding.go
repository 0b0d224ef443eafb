package anomaly

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MaxObservationBytes bounds one encoded observation.
const MaxObservationBytes = 4096

// Observation type tags in the JSON form.
const (
	TypeCall             = "call"
	TypeRegistration     = "registration"
	TypeSecurityEvent    = "security_event"
	TypeCredentialChange = "credential_change"
)

type callWire struct {
	Type string `json:"type"`
	Call
}

type registrationWire struct {
	Type string `json:"type"`
	Registration
}

type eventWire struct {
	Type string `json:"type"`
	SecurityEvent
}

type credentialWire struct {
	Type string `json:"type"`
	CredentialChange
}

// EncodeObservation renders an observation as one JSON object: its fields
// and "type" (TypeCall, ...). What a PBX feed or a queue between the
// server's replicas carries.
func EncodeObservation(o Observation) ([]byte, error) {
	var v any
	switch x := o.(type) {
	case Call:
		v = callWire{TypeCall, x}
	case Registration:
		v = registrationWire{TypeRegistration, x}
	case SecurityEvent:
		v = eventWire{TypeSecurityEvent, x}
	case CredentialChange:
		v = credentialWire{TypeCredentialChange, x}
	default:
		return nil, fmt.Errorf("%w: observation of type %T", ErrInvalid, o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode observation: %w", err)
	}
	return b, nil
}

// DecodeObservation reads what EncodeObservation writes: at most
// MaxObservationBytes, no unknown fields, every field valid.
func DecodeObservation(b []byte) (Observation, error) {
	if len(b) > MaxObservationBytes {
		return nil, fmt.Errorf("%w: observation of %d bytes (at most %d)", ErrInvalid, len(b), MaxObservationBytes)
	}
	var probe struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: observation: %v", ErrInvalid, err)
	}
	var o Observation
	var err error
	switch probe.Type {
	case TypeCall:
		var w callWire
		err = strictJSON(b, &w)
		o = w.Call
	case TypeRegistration:
		var w registrationWire
		err = strictJSON(b, &w)
		o = w.Registration
	case TypeSecurityEvent:
		var w eventWire
		err = strictJSON(b, &w)
		o = w.SecurityEvent
	case TypeCredentialChange:
		var w credentialWire
		err = strictJSON(b, &w)
		o = w.CredentialChange
	default:
		return nil, fmt.Errorf("%w: observation type %q", ErrInvalid, clip(probe.Type))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, probe.Type, err)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o, nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the object")
	}
	return nil
}
