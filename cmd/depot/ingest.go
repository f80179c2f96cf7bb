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
	now   func() time.Time // Main.Clock: fixes are judged on the depot's time

	// For the stock apps (handhelds.go): presence, the broker's
	// subscriptions of an identity, and publishing.
	sessions *sessions
	filters  func(identity, prefix string) []string
	publish  func(topic string, payload []byte, qos byte, expiry uint32) error
	hh       handhelds

	refused sync.Map // reason -> *atomic.Int64
}

func (in *ingest) Ingest(clientID, topic string, payload []byte, qos byte) error {
	if strings.HasPrefix(topic, bridge.OwnTracksPrefix) {
		return in.ownTracksTopic(clientID, topic, payload, qos)
	}
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
		if isOwnTracksJSON(payload) {
			return in.ownTracksOnGPS(clientID, topic, driver, payload, qos > 0)
		}
		f, err := bridge.ParseFix(driver, payload, in.now())
		if err != nil {
			return in.refuse(err, broker.CodePayloadFormat, clientID, topic)
		}
		f.App = gpsApp(clientID)
		return in.depot.IngestFix(f, qos > 0)
	case bridge.KindInbox:
		return in.refuse(errors.New("inbox topics are written by the server only"), broker.CodeNotAuthorized, clientID, topic)
	case bridge.KindReply:
		err := in.depot.HandleReply(driver, payload)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, bridge.ErrInvalid):
			return in.refuse(err, broker.CodePayloadFormat, clientID, topic)
		case errors.Is(err, bridge.ErrNotFound), errors.Is(err, bridge.ErrConflict), errors.Is(err, bridge.ErrForbidden):
			// A clear refusal: "offer … is already accepted" in the PUBACK.
			return in.refuse(err, broker.CodeRefused, clientID, topic)
		}
		return err
	}
	return nil // presence: the handheld's own retained state and last will, carried as is
}

func (in *ingest) refuse(err error, code byte, clientID, topic string) error {
	reason := bridge.RefusalReason(err)
	switch {
	case reason != "other":
	case code == broker.CodeNotAuthorized:
		reason = "not_authorized"
	case code == broker.CodeRefused, code == broker.CodePayloadFormat:
		reason = "reply"
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

// sessions turns the broker's session starts and ends into driver
// presence. A driver may have more than one session (a phone and a
// tablet); it is online while any is.
type sessions struct {
	depot *bridge.Depot
	log   *slog.Logger
	mu    sync.Mutex
	count map[string]int
}

func (s *sessions) SessionStarted(identity string) {
	id, ok := bridge.ParseIdentity(identity)
	if !ok || id.Role != bridge.RoleDriver {
		return
	}
	s.mu.Lock()
	s.count[id.Subject]++
	first := s.count[id.Subject] == 1
	s.mu.Unlock()
	if first {
		if err := s.depot.DriverConnected(id.Subject); err != nil && !errors.Is(err, bridge.ErrClosed) {
			s.log.Warn("presence", "driver", id.Subject, "err", err)
		}
	}
}

// gone is a handheld saying it is leaving (OwnTracks' lwt, published):
// offline, unless the driver has another session.
func (s *sessions) gone(driver string) {
	s.mu.Lock()
	others := s.count[driver] > 1
	s.mu.Unlock()
	if others {
		return
	}
	if err := s.depot.DriverDisconnected(driver); err != nil && !errors.Is(err, bridge.ErrClosed) {
		s.log.Warn("presence", "driver", driver, "err", err)
	}
}

func (s *sessions) SessionEnded(identity string) {
	id, ok := bridge.ParseIdentity(identity)
	if !ok || id.Role != bridge.RoleDriver {
		return
	}
	s.mu.Lock()
	s.count[id.Subject]--
	last := s.count[id.Subject] <= 0
	if last {
		delete(s.count, id.Subject)
	}
	s.mu.Unlock()
	if last {
		if err := s.depot.DriverDisconnected(id.Subject); err != nil && !errors.Is(err, bridge.ErrClosed) {
			s.log.Warn("presence", "driver", id.Subject, "err", err)
		}
	}
}
