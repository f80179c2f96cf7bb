package main

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/broker"
)

// ingest is the broker's Ingestor: it turns publishes on the depot's driver
// topics into domain calls, and domain refusals into MQTT reason codes.
type ingest struct {
	depot *bridge.Depot
	id    string
	log   *slog.Logger
	now   func() time.Time

	refused sync.Map // reason -> *atomic.Int64
}

func (in *ingest) Ingest(clientID, topic string, payload []byte, qos byte) error {
	if !strings.HasPrefix(topic, "depot/"+in.id+"/") {
		return nil // not the depot's tree: plain MQTT, nothing to do with it
	}
	driver, kind, err := bridge.ParseDriverTopic(in.id, topic)
	if err != nil {
		// routes/, events, system/ and the rest are the server's own.
		return in.refuse(err, broker.CodeTopicInvalid, clientID, topic)
	}
	switch kind {
	case bridge.KindGPS:
		now := time.Now
		if in.now != nil {
			now = in.now
		}
		f, err := bridge.ParseFix(driver, payload, now())
		if err != nil {
			return in.refuse(err, broker.CodePayloadFormat, clientID, topic)
		}
		return in.depot.IngestFix(f, qos > 0)
	case bridge.KindInbox:
		return in.refuse(errors.New("inbox topics are written by the server only"), broker.CodeNotAuthorized, clientID, topic)
	}
	return nil // presence and reply: carried as plain MQTT until the dispatch events land
}

func (in *ingest) refuse(err error, code byte, clientID, topic string) error {
	reason := bridge.RefusalReason(err)
	if reason == "other" && code == broker.CodeNotAuthorized {
		reason = "not_authorized"
	}
	c, _ := in.refused.LoadOrStore(reason, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	in.depot.Stats.FixesRefused.Add(1)
	in.log.Debug("publish refused", "client", clientID, "topic", topic, "reason", reason, "err", err)
	return &broker.Refused{Code: code, Reason: err.Error()}
}

func (in *ingest) refusedCounts() map[string]int64 {
	out := map[string]int64{}
	in.refused.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}
