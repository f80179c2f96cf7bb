package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/broker"
)

// The stock apps' side of ingest (docs/handhelds.md): OwnTracks over MQTT
// and HTTP, Traccar Client's OsmAnd requests, and "locate now". Each turns
// into the same fix the depot's own gps topic makes, so one rule judges
// them all.

// reportLocation is OwnTracks' command to publish its position now.
var reportLocation = json.RawMessage(`{"_type":"cmd","action":"reportLocation"}`)

// locateExpiry: a request for a position now is not worth delivering
// minutes later.
const locateExpiry = 300

// handhelds holds what the stock apps need beyond a fix: the "locate now"
// requests waiting for an OwnTracks phone in HTTP mode (it can only be
// answered when it next posts). Bounded by the drivers with a credential.
type handhelds struct {
	mu      sync.Mutex
	httpAt  map[string]time.Time // driver → its OwnTracks' last HTTP post
	pending map[string]bool      // driver → a reportLocation waits for that post
}

// ownTracksTopic handles a publish on owntracks/<driver>/<device>[/<sub>]
// (the ACL let only the driver itself write there). The base topic carries
// locations and the lwt; subtopics (event, waypoint, status, …) are
// acknowledged and dropped.
func (in *ingest) ownTracksTopic(clientID, topic string, payload []byte, qos byte) error {
	parts := strings.Split(strings.TrimPrefix(topic, bridge.OwnTracksPrefix), "/")
	if len(parts) != 2 {
		return nil
	}
	return in.ownTracksMQTT(clientID, topic, parts[0], payload, qos > 0)
}

// ownTracksMQTT is ownTracks with its refusals as MQTT reason codes.
func (in *ingest) ownTracksMQTT(clientID, topic, driver string, payload []byte, durable bool) error {
	err := in.ownTracks(driver, payload, durable)
	if err != nil && bridge.RefusalReason(err) != "other" {
		return in.refuse(err, broker.CodePayloadFormat, clientID, topic)
	}
	return err
}

// ownTracks takes one OwnTracks message from driver's handheld: a location
// becomes a fix, an lwt says the handheld is gone, anything else is
// dropped (an error would have the app send it again for ever).
func (in *ingest) ownTracks(driver string, payload []byte, durable bool) error {
	m, err := bridge.ParseOwnTracks(driver, payload, in.now())
	if err != nil {
		return err
	}
	switch m.Type {
	case bridge.OwnTracksLocation:
		return in.depot.IngestFix(m.Fix, durable)
	case bridge.OwnTracksLWT:
		if in.sessions != nil {
			in.sessions.gone(driver)
		}
	}
	return nil
}

// ownTracksOnGPS takes an OwnTracks location published on the depot's own
// gps topic. Only a location, within the size of a fix: what this topic
// carries reaches every dashboard, so nothing else is let through.
func (in *ingest) ownTracksOnGPS(clientID, topic, driver string, payload []byte, durable bool) error {
	if len(payload) > bridge.MaxFixPayload {
		return in.refuse(fmt.Errorf("%w: %d bytes, limit %d", bridge.ErrTooLarge, len(payload), bridge.MaxFixPayload), broker.CodePayloadFormat, clientID, topic)
	}
	m, err := bridge.ParseOwnTracks(driver, payload, in.now())
	if err == nil && m.Type != bridge.OwnTracksLocation {
		err = fmt.Errorf("%w: only an OwnTracks location may be published on the gps topic, not %q", bridge.ErrMalformed, m.Type)
	}
	if err != nil {
		return in.refuse(err, broker.CodePayloadFormat, clientID, topic)
	}
	return in.depot.IngestFix(m.Fix, durable)
}

// gpsApp names the app behind a fix on the depot's own gps topic: the
// driver app connects as drv-<id>:app….
func gpsApp(clientID string) string {
	if i := strings.LastIndexByte(clientID, ':'); i >= 0 && strings.HasPrefix(clientID[i+1:], "app") {
		return bridge.AppDriverApp
	}
	return bridge.AppOther
}

// isOwnTracksJSON tells an OwnTracks message on the depot's gps topic
// from the depot's own fix format.
func isOwnTracksJSON(payload []byte) bool { return bytes.Contains(payload, []byte(`"_type"`)) }

// OwnTracks takes the body of an OwnTracks HTTP post from driver (already
// authenticated) and answers the commands waiting for it. An empty body
// is allowed and ignored. A fix that can never be taken is acknowledged
// and dropped (takenAndDropped).
func (in *ingest) OwnTracks(driver string, body []byte) ([]json.RawMessage, error) {
	in.hh.mu.Lock()
	in.hh.httpAt[driver] = in.now()
	in.hh.mu.Unlock()
	if len(bytes.TrimSpace(body)) > 0 {
		err := in.ownTracks(driver, body, true)
		if err != nil && bridge.RefusalReason(err) != "other" && in.RefuseHandheld(err, "owntracks-http") {
			err = nil // taken and dropped
		}
		if err != nil {
			return nil, err
		}
	}
	in.hh.mu.Lock()
	defer in.hh.mu.Unlock()
	if in.hh.pending[driver] {
		delete(in.hh.pending, driver)
		return []json.RawMessage{reportLocation}, nil
	}
	return []json.RawMessage{}, nil
}

// OsmAnd takes a validated fix from Traccar Client; the same rule for an
// old one as OwnTracks.
func (in *ingest) OsmAnd(f bridge.Fix) error { return in.depot.IngestFix(f, true) }

// RefuseHandheld counts a fix refused before it reached ingest (a parse
// error of an HTTP handheld) and says whether the app should be told it was
// delivered: a stale fix is, see OwnTracks.
func (in *ingest) RefuseHandheld(err error, via string) (delivered bool) {
	_ = in.refuse(err, broker.CodePayloadFormat, via, via)
	return takenAndDropped(err)
}

// takenAndDropped: refusals a stock app is told were delivered. A fix too
// old, one from a clock far ahead, or a body too large will never be
// taken, and an app told so would send it again for ever (Traccar Client
// deletes a buffered fix only on 2xx; OwnTracks on iOS sends nothing newer
// until it gets one), holding back every later fix. They are counted.
func takenAndDropped(err error) bool {
	return errors.Is(err, bridge.ErrStale) || errors.Is(err, bridge.ErrFuture) || errors.Is(err, bridge.ErrTooLarge)
}

// Locate asks driver's handhelds for their position now: OwnTracks
// devices subscribed to their command topic over MQTT at once, an
// OwnTracks phone in HTTP mode with the answer to its next post, the
// driver app through its inbox. It says which were asked. Traccar Client
// cannot be asked; it reports on its own interval.
func (in *ingest) Locate(driver string) ([]string, error) {
	if !bridge.ValidID(driver) {
		return nil, fmt.Errorf("%w: driver id", bridge.ErrInvalid)
	}
	sent := []string{}
	id := bridge.Identity{Role: bridge.RoleDriver, Subject: driver}.String()
	asked := map[string]bool{}
	for _, f := range in.filters(id, bridge.OwnTracksPrefix+driver+"/") {
		if asked[f] || strings.ContainsAny(f, "+#") || !strings.HasSuffix(f, "/"+bridge.KindCmd) {
			continue
		}
		asked[f] = true
		if err := in.publish(f, reportLocation, 1, locateExpiry); err != nil {
			return sent, err
		}
		if len(sent) == 0 {
			sent = append(sent, "owntracks-mqtt")
		}
	}
	in.hh.mu.Lock()
	if at, ok := in.hh.httpAt[driver]; ok && in.now().Sub(at) < 24*time.Hour {
		in.hh.pending[driver] = true
		sent = append(sent, "owntracks-http")
	}
	in.hh.mu.Unlock()
	msg, _ := json.Marshal(map[string]any{"type": "driver:locate",
		"payload": map[string]any{"driverId": driver, "at": in.now().UTC().Truncate(time.Millisecond)}})
	if err := in.publish(in.depot.Topics.Driver(driver, bridge.KindInbox), msg, 1, locateExpiry); err != nil {
		return sent, err
	}
	return append(sent, "driverapp"), nil
}

// DriverView is the driver app's starting state.
func (in *ingest) DriverView(driver string) bridge.DriverView { return in.depot.DriverView(driver) }
