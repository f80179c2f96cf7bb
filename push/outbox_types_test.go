package push

import (
	"context"
	"encoding/binary"
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

// countingStore counts the outbox's reads of the event log.
type countingStore struct {
	*memStore
	reads int
}

func (c *countingStore) EventsAfter(after uint64, limit int) ([]json.RawMessage, error) {
	c.reads++
	return c.memStore.EventsAfter(after, limit)
}

// TestOutboxIdleReadsNothing: with no target and nothing queued, a step
// moves the cursor past the log without reading it; once a driver has a
// target, the next offer is read and pushed.
func TestOutboxIdleReadsNothing(t *testing.T) {
	now := time.Now()
	mem := newMemStore()
	st := &countingStore{memStore: mem}
	snd := &scriptSender{}
	o := &Outbox{Store: st, Senders: map[string]Sender{KindFCM: snd}, Now: func() time.Time { return now },
		Live: func(string, ...string) bool { return false }, Last: func() uint64 { return uint64(len(mem.events)) }}
	if err := o.Start(0); err != nil {
		t.Fatal(err)
	}
	for range 1200 {
		mem.offer("D1", now, 30*time.Minute)
	}
	if err := o.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.reads != 0 {
		t.Fatalf("with no target the log was read %d times", st.reads)
	}
	if raw, _ := mem.PushGet(cursorKey); binary.BigEndian.Uint64(raw) != 1200 {
		t.Fatalf("cursor at %d, want 1200", binary.BigEndian.Uint64(raw))
	}

	if _, err := o.Register("D1", fcmTarget()); err != nil {
		t.Fatal(err)
	}
	mem.offer("D1", now, 30*time.Minute)
	_ = o.Step(context.Background())
	now = now.Add(DefaultGrace + time.Second)
	_ = o.Step(context.Background())
	if st.reads == 0 || snd.n != 1 {
		t.Fatalf("with a target: %d reads, %d sent; want the new offer read and pushed once", st.reads, snd.n)
	}
}
