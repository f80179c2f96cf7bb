package push

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
)

// memStore is the outbox's store in memory, with an event log tests append
// to; a restart is a new Outbox over the same memStore.
type memStore struct {
	mu     sync.Mutex
	kv     map[string][]byte
	events []json.RawMessage
}

func newMemStore() *memStore { return &memStore{kv: map[string][]byte{}} }

func (s *memStore) PushGet(k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kv[k]
	if !ok {
		return nil, bridge.ErrNotFound
	}
	return v, nil
}
func (s *memStore) PushPut(k string, v []byte) error {
	s.mu.Lock()
	s.kv[k] = append([]byte(nil), v...)
	s.mu.Unlock()
	return nil
}
func (s *memStore) PushDelete(k string) error {
	s.mu.Lock()
	delete(s.kv, k)
	s.mu.Unlock()
	return nil
}
func (s *memStore) PushScan(prefix string) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.kv {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slicesSort(keys)
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = s.kv[k]
	}
	return out, nil
}
func (s *memStore) EventsAfter(after uint64, limit int) ([]json.RawMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []json.RawMessage
	for i := after; i < uint64(len(s.events)) && i < after+uint64(limit); i++ {
		if s.events[i] != nil { // nil: a seq with no event (pruned)
			out = append(out, s.events[i])
		}
	}
	return out, nil
}

func slicesSort(k []string) {
	for i := 1; i < len(k); i++ {
		for j := i; j > 0 && k[j] < k[j-1]; j-- {
			k[j], k[j-1] = k[j-1], k[j]
		}
	}
}

// offer appends a vto:offer for driver to the log, made at, open for ttl.
func (s *memStore) offer(driver string, at time.Time, ttl time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := uint64(len(s.events) + 1)
	id := fmt.Sprintf("vto_%d", seq)
	p := bridge.OfferStatus{OfferTerms: bridge.OfferTerms{VTOID: id, RouteID: "R1", RouteCode: "CX01", DriverID: driver,
		Reason: "light volume", OfferedAt: at, ExpiresAt: at.Add(ttl)}, State: bridge.StateOpen}
	env, _ := json.Marshal(map[string]any{"seq": seq, "id": fmt.Sprintf("evt_%d", seq), "type": bridge.EventVTOOffer,
		"priority": bridge.PriorityHigh, "timestamp": at, "payload": p})
	s.events = append(s.events, env)
	return id
}

// TestOutboxWebPush runs the outbox with the real Web Push sender against
// a push service that decrypts every payload and checks the VAPID
// signature: delivered once; held back while the live session takes it;
// an outage, then the service back: nothing lost, nothing doubled, also
// across a restart; an offer that expires while queued is never sent; a
// subscription the service calls gone is forgotten.
func TestOutboxWebPush(t *testing.T) {
	v := testVAPID(t)
	var status atomic.Int32
	status.Store(201)
	_, b, got := fakePushService(t, v, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) })
	st := newMemStore()
	now := time.Now()
	clock := func() time.Time { return now }
	live := map[string]bool{}
	outbox := func() *Outbox {
		return &Outbox{Store: st, Senders: map[string]Sender{KindWebPush: NewWebPush(v, testSubscriber, nil)},
			Live: func(d string, ids ...string) bool { return live[d+"/"+ids[0]] }, Now: clock, Grace: time.Second}
	}
	o := outbox()
	if err := o.Start(0); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Register("D1", b.target); err != nil {
		t.Fatal(err)
	}
	step := func(o *Outbox) {
		t.Helper()
		if err := o.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	received := func() []pushRequest {
		var out []pushRequest
		for {
			select {
			case p := <-got:
				out = append(out, p)
			default:
				return out
			}
		}
	}

	// Delivered once, after the live session's head start.
	vto := st.offer("D1", now, 30*time.Minute)
	step(o)
	if n := len(received()); n != 0 {
		t.Fatalf("%d pushed before the live session had its chance", n)
	}
	now = now.Add(2 * time.Second)
	step(o)
	if ps := received(); len(ps) != 1 || ps[0].payload.Data["ref"] != vto || ps[0].payload.Data["type"] != "vto:offer" || ps[0].payload.ID != "evt_1" {
		t.Fatalf("pushed %+v", ps)
	}
	step(o)
	if n := len(received()); n != 0 || o.Health().Queued != 0 {
		t.Fatalf("pushed again: %d", n)
	}

	// The live session took it: no push.
	st.offer("D1", now, 30*time.Minute)
	live["D1/evt_2"] = true
	step(o)
	now = now.Add(2 * time.Second)
	step(o)
	if n := len(received()); n != 0 || o.Health().Live != 1 {
		t.Fatalf("%d pushed, live %d", n, o.Health().Live)
	}

	// The service is down; a restart in the middle; then it is back.
	status.Store(503)
	vto3 := st.offer("D1", now, 30*time.Minute)
	step(o)
	now = now.Add(2 * time.Second)
	step(o)
	if h := o.Health(); h.Queued != 1 || h.FailingTargets != 1 {
		t.Fatalf("while down: %+v", h)
	}
	o = outbox() // a restart: the queue is in the store
	for range 3 {
		now = now.Add(5 * time.Minute) // past any backoff, within the offer's 30 minutes
		step(o)
	}
	status.Store(201)
	before := len(received())
	now = now.Add(5 * time.Minute)
	step(o)
	step(o)
	ps := received()
	// one attempt before the restart, three after
	if before != 4 || len(ps) != 1 || ps[0].payload.Data["ref"] != vto3 {
		t.Fatalf("%d attempts while down, then %+v", before, ps)
	}
	if h := o.Health(); h.Queued != 0 || h.Sent != 1 || h.FailingTargets != 0 {
		t.Fatalf("after: %+v", h)
	}

	// An offer that expires while the service is down is never sent.
	status.Store(503)
	st.offer("D1", now, 5*time.Minute)
	step(o)
	now = now.Add(2 * time.Second)
	step(o)
	received()
	status.Store(201)
	now = now.Add(6 * time.Minute)
	step(o)
	if ps := received(); len(ps) != 0 || o.Health().Expired != 1 {
		t.Fatalf("an expired offer was sent: %+v", ps)
	}

	// Gone: the subscription is forgotten.
	status.Store(410)
	st.offer("D1", now, 30*time.Minute)
	step(o)
	now = now.Add(2 * time.Second)
	step(o)
	received()
	if ts, _ := o.Targets("D1"); len(ts) != 0 || o.Health().Removed != 1 {
		t.Fatalf("targets %+v", ts)
	}
}

// scriptSender answers each send as its function says and counts them.
type scriptSender struct {
	n      int
	answer func(n int) Result
	during func() // runs inside each send
}

func (s *scriptSender) Send(ctx context.Context, t Target, m Message) Result {
	s.n++
	if s.during != nil {
		s.during()
	}
	if s.answer == nil {
		return Result{}
	}
	return s.answer(s.n)
}

// failingStore refuses writes while fail is set (a full disk).
type failingStore struct {
	*memStore
	fail bool
}

func (f *failingStore) PushPut(k string, v []byte) error {
	if f.fail {
		return fmt.Errorf("no space left on device")
	}
	return f.memStore.PushPut(k, v)
}

func fcmTarget() Target { return Target{Kind: KindFCM, Token: "tok-1"} }

// TestOutboxEdges, from a review: a stretch of the log with no events is
// passed over; a full disk does not make a delivered push go again each
// round; a target dropped during a send stays dropped; a push waiting for
// an offer that was answered meanwhile is not sent; the live session is
// asked again before a retry.
func TestOutboxEdges(t *testing.T) {
	now := time.Now()
	mem := newMemStore()
	st := &failingStore{memStore: mem}
	snd := &scriptSender{}
	live := map[string]bool{}
	o := &Outbox{Store: st, Senders: map[string]Sender{KindFCM: snd}, Now: func() time.Time { return now }, Grace: time.Second,
		Live: func(d string, ids ...string) bool { return live[ids[0]] }, Last: func() uint64 { return uint64(len(mem.events)) }}
	if err := o.Start(0); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Register("D1", fcmTarget()); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		_ = o.Step(context.Background())
		now = now.Add(2 * time.Second)
		_ = o.Step(context.Background())
	}

	// 600 numbers with no event (pruned, or dropped by a failing disk).
	for range 600 {
		mem.events = append(mem.events, nil)
	}
	mem.offer("D1", now, 30*time.Minute)
	run()
	if snd.n != 1 {
		t.Fatalf("past a gap of 600: %d sent", snd.n)
	}

	// A full disk after the send: not sent again each round.
	mem.offer("D1", now, 30*time.Minute)
	_ = o.Step(context.Background())
	now = now.Add(2 * time.Second)
	st.fail = true
	for range 10 {
		_ = o.Step(context.Background())
		now = now.Add(time.Second)
	}
	st.fail = false
	if snd.n != 2 {
		t.Fatalf("with a full disk: %d sent, want 2", snd.n)
	}
	for range 3 {
		now = now.Add(10 * time.Minute)
		_ = o.Step(context.Background())
	}
	o.Live = func(d string, ids ...string) bool { return live[ids[0]] }

	// Dropped during a send (switched off, revoked): it stays dropped.
	snd.n = 0
	snd.answer = func(int) Result { return Result{Retry: true, Err: fmt.Errorf("503")} }
	snd.during = func() { _ = o.DropDriver("D1") }
	mem.offer("D1", now, 30*time.Minute)
	run()
	if ts, _ := o.Targets("D1"); len(ts) != 0 {
		t.Fatalf("a target dropped during a send came back: %+v", ts)
	}
	snd.during, snd.answer = nil, nil
	now = now.Add(time.Hour)
	_ = o.Step(context.Background())

	// Answered while the push waited: not sent.
	if _, err := o.Register("D1", fcmTarget()); err != nil {
		t.Fatal(err)
	}
	snd.n = 0
	vto := mem.offer("D1", now, 30*time.Minute)
	_ = o.Step(context.Background())
	ans, _ := json.Marshal(map[string]any{"seq": len(mem.events) + 1, "id": "x", "type": bridge.EventVTOAccepted, "priority": bridge.PriorityHigh,
		"timestamp": now, "payload": bridge.VTOAnswered{VTOID: vto, DriverID: "D1", State: bridge.StateAccepted}})
	mem.events = append(mem.events, ans)
	now = now.Add(2 * time.Second)
	_ = o.Step(context.Background())
	if snd.n != 0 || o.Health().Settled != 1 {
		t.Fatalf("an answered offer was pushed: %d, %+v", snd.n, o.Health())
	}

	// A retry asks the live session again.
	snd.answer = func(int) Result { return Result{Retry: true, Err: fmt.Errorf("503")} }
	mem.offer("D1", now, 30*time.Minute)
	run()
	if snd.n != 1 {
		t.Fatalf("first attempt: %d", snd.n)
	}
	live[fmt.Sprintf("evt_%d", len(mem.events))] = true
	now = now.Add(10 * time.Minute)
	_ = o.Step(context.Background())
	if snd.n != 1 || o.Health().Queued != 0 {
		t.Fatalf("retried although the live session took it: %d sent, %+v", snd.n, o.Health())
	}
}
