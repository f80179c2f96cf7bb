package bridge

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// EventHead is what a reader of the whole log needs of most events: the
// seq, type and time, not the payload.
type EventHead struct {
	Seq       uint64    `json:"seq"`
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
}

// payloadKey ends the part of a stored envelope before its payload
// (the encoder writes seq, id, type, priority, timestamp, payload).
var payloadKey = []byte(`,"payload":`)

// ReadEventHead decodes a stored envelope's seq, type and time without its
// payload (most of its bytes): the events export reads through a day of the
// log, about a million route updates, and the push outbox follows every
// event for the few it pushes. An envelope in another shape than the
// encoder's is decoded whole.
func ReadEventHead(raw []byte) (EventHead, bool) {
	if i := bytes.Index(raw, payloadKey); i > 0 {
		if h, ok := sniffHead(raw[:i]); ok {
			return h, true
		}
	}
	var h EventHead
	return h, json.Unmarshal(raw, &h) == nil && h.Seq > 0
}

// sniffHead reads {"seq":N,…,"type":"…",…,"timestamp":"…" as the
// encoder writes it: strings without escapes, a time in RFC 3339.
func sniffHead(head []byte) (EventHead, bool) {
	var h EventHead
	rest, ok := bytes.CutPrefix(head, []byte(`{"seq":`))
	if !ok {
		return h, false
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	if err != nil || seq == 0 {
		return h, false
	}
	str := func(key string) (string, bool) {
		_, after, ok := bytes.Cut(rest, []byte(key))
		if !ok {
			return "", false
		}
		end := bytes.IndexByte(after, '"')
		if end < 0 || bytes.IndexByte(after[:end], '\\') >= 0 {
			return "", false
		}
		return string(after[:end]), true
	}
	typ, ok1 := str(`,"type":"`)
	ts, ok2 := str(`,"timestamp":"`)
	if !ok1 || !ok2 {
		return h, false
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return h, false
	}
	return EventHead{Seq: seq, Type: typ, Timestamp: t}, true
}
