package push

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
)

// TestPushTypesCoverMessages: every event type messagesOf or settled acts
// on is in pushTypes, which lets the outbox pass over the rest unread.
// Each of bridge's event types is tried with a payload that makes
// messagesOf or settled act if it acts on that type at all.
func TestPushTypesCoverMessages(t *testing.T) {
	payload := json.RawMessage(`{"vtoId":"v1","rescueId":"r1","state":"resolved","driverId":"D1","routeId":"R1","routeCode":"CX01",
		"fromDriverId":"D1","toDriverId":"D2","rescueDriver":{"driverId":"D2"},"strugglingDriver":{"driverId":"D1"},
		"expiresAt":"2030-01-01T00:00:00Z"}`)
	acted := 0
	for _, typ := range []string{bridge.EventRouteUpdate, bridge.EventDriverPresence, bridge.EventDriverDevice,
		bridge.EventVTOOffer, bridge.EventVTOAccepted, bridge.EventVTODeclined, bridge.EventVTOExpired, bridge.EventVTOConfirmed,
		bridge.EventRescueAlert, bridge.EventRescueUpdated, bridge.EventRouteReassign} {
		acts := len(messagesOf(typ, payload, time.Now())) > 0 || settled(typ, payload) != ""
		if acts {
			acted++
		}
		if acts && !pushable(typ) {
			t.Errorf("%s: the outbox acts on it, but pushable passes it over", typ)
		}
		if !acts && pushable(typ) {
			t.Logf("%s: pushable, though this payload made nothing of it", typ)
		}
	}
	if acted < 6 {
		t.Fatalf("the payload made the outbox act on only %d types: the test checks little", acted)
	}
}
