package bridge

import (
	"encoding/json"
	"strconv"
	"time"
)

// Event types (docs/design.md §4).
const (
	EventRouteUpdate  = "route:update"
	EventSystemStatus = "system:status"
)

// Event priorities.
const (
	PriorityNormal   = "NORMAL"
	PriorityHigh     = "HIGH"
	PriorityCritical = "CRITICAL"
)

// Envelope is one dashboard event. Seq increases by one per depot with no
// gaps; it is assigned by Depot, stored, then published.
type Envelope struct {
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Priority  string          `json:"priority"`
	Timestamp time.Time       `json:"timestamp"`
	Payload   json.RawMessage `json:"payload"`
}

// jsonAppender is a payload that encodes itself without reflection.
type jsonAppender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// newEnvelope encodes payload and stamps the envelope; the id is derived
// from the seq so it is unique per depot and stable across restarts.
func newEnvelope(seq uint64, typ, prio string, at time.Time, payload any) (Envelope, []byte, error) {
	e := Envelope{Seq: seq, ID: "evt_" + strconv.FormatUint(seq, 10), Type: typ, Priority: prio,
		Timestamp: at.UTC().Truncate(time.Millisecond)}
	if a, ok := payload.(jsonAppender); ok && jsonTime(e.Timestamp) {
		// The payload is written in place, after the envelope's other fields.
		raw := appendEnvelope(make([]byte, 0, 384), e)
		raw = raw[:len(raw)-len("null}")]
		start := len(raw)
		raw, err := a.AppendJSON(raw)
		if err != nil {
			return Envelope{}, nil, err
		}
		e.Payload = raw[start:len(raw):len(raw)]
		return e, append(raw, '}'), nil
	}
	p, err := json.Marshal(payload)
	if err != nil {
		return Envelope{}, nil, err
	}
	e.Payload = p
	if !jsonTime(e.Timestamp) {
		raw, err := json.Marshal(e)
		return e, raw, err
	}
	return e, appendEnvelope(make([]byte, 0, len(p)+128), e), nil
}
