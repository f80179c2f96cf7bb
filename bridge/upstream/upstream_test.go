package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/internal/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// memLog is the depot's side in memory: an event log tests append to and
// the meta record.
type memLog struct {
	reads  atomic.Int64 // EventsAfter calls
	mu     sync.Mutex
	events []json.RawMessage
	meta   map[string][]byte
	routes map[string]bridge.RouteStatus
}

func newMemLog() *memLog {
	return &memLog{meta: map[string][]byte{}, routes: map[string]bridge.RouteStatus{}}
}

func (l *memLog) EventsAfter(after uint64, limit int) ([]json.RawMessage, error) {
	l.reads.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []json.RawMessage
	for i := after; i < uint64(len(l.events)) && i < after+uint64(limit); i++ {
		if l.events[i] != nil {
			out = append(out, l.events[i])
		}
	}
	return out, nil
}
func (l *memLog) MetaGet(k string) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.meta[k]
	if !ok {
		return nil, bridge.ErrNotFound
	}
	return v, nil
}
func (l *memLog) MetaPut(k string, v []byte) error {
	l.mu.Lock()
	l.meta[k] = append([]byte(nil), v...)
	l.mu.Unlock()
	return nil
}
func (l *memLog) OldestSeq() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.events {
		if e != nil {
			return uint64(i + 1), nil
		}
	}
	return 0, nil
}
func (l *memLog) last() uint64 { l.mu.Lock(); defer l.mu.Unlock(); return uint64(len(l.events)) }

// add appends n route:update events for route R1.
func (l *memLog) add(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range n {
		seq := len(l.events) + 1
		l.routes["R1"] = bridge.RouteStatus{RouteID: "R1", RouteCode: "CX01", CompletedStops: seq, StatusColor: bridge.Green}
		env, _ := json.Marshal(map[string]any{"seq": seq, "id": "evt_" + strconv.Itoa(seq), "type": bridge.EventRouteUpdate,
			"priority": bridge.PriorityNormal, "timestamp": time.Now().UTC(), "payload": map[string]any{"routeId": "R1", "completedStops": seq}})
		l.events = append(l.events, env)
	}
}

func (l *memLog) route(id string) (bridge.RouteStatus, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.routes[id]
	return r, ok
}

// natsServer runs a real JetStream server on 127.0.0.1 with its store in
// dir (a restart on the same dir keeps the stream).
func natsServer(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	return natstest.Start(t, server.Options{Port: port, StoreDir: dir})
}

func waitFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	natstest.WaitFor(t, d, f)
}

// streamSeqs reads every event of depot in the stream, in stream order,
// and returns their depot seqs.
func streamSeqs(t *testing.T, url, depot string) []uint64 {
	t.Helper()
	return readSeqs(t, url, depot, false)
}

// readSeqs is streamSeqs, passing over messages without a Nats-Msg-Id
// when strangers are expected.
func readSeqs(t *testing.T, url, depot string, strangers bool) []uint64 {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A cluster that just lost a node answers its API again once it has
	// elected new leaders.
	var c jetstream.Consumer
	var info *jetstream.ConsumerInfo
	waitFor(t, 20*time.Second, func() (err error) {
		if c, err = js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{EventsSubject(depot)}}); err != nil {
			return err
		}
		info, err = c.Info(ctx)
		return err
	})
	var out []uint64
	for range info.NumPending {
		var m jetstream.Msg
		waitFor(t, 20*time.Second, func() (err error) {
			m, err = c.Next(jetstream.FetchMaxWait(5 * time.Second))
			return err
		})
		var env struct {
			Seq uint64 `json:"seq"`
		}
		_ = json.Unmarshal(m.Data(), &env)
		id := m.Headers().Get(jetstream.MsgIDHeader)
		if id == "" && strangers {
			continue
		}
		if id != depot+":"+strconv.FormatUint(env.Seq, 10) {
			t.Fatalf("Nats-Msg-Id %q for seq %d", id, env.Seq)
		}
		out = append(out, env.Seq)
	}
	return out
}

// exactlyOnce checks seqs is 1..n.
func exactlyOnce(seqs []uint64, n int) error {
	if len(seqs) != n {
		return fmt.Errorf("%d events in the stream, want %d", len(seqs), n)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			return fmt.Errorf("position %d holds seq %d", i, s)
		}
	}
	return nil
}

func startForwarder(t *testing.T, url string, l *memLog, opts ...nats.Option) (*Forwarder, context.CancelFunc) {
	t.Helper()
	f, err := New(Config{Depot: "D1", URLs: url, Store: l, Route: l.route, LastSeq: l.last,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f.opts = opts
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return f, stop
}

func caughtUp(t *testing.T, f *Forwarder, l *memLog) {
	t.Helper()
	waitFor(t, 15*time.Second, func() error {
		if h := f.Health(); h.Cursor != l.last() {
			return fmt.Errorf("health %+v, log at %d", h, l.last())
		}
		return nil
	})
}

// TestForwarder: the log reaches the stream exactly once and in order,
// with each route's state as the last message of its subject, across a
// restart of the forwarder, a crash between an acknowledgement and the
// local cursor, and an outage of the server (longer than any duplicate
// window matters: the cursor comes from the stream, not from dedup).
func TestForwarder(t *testing.T) {
	dir := t.TempDir()
	s := natsServer(t, dir, -1)
	url := s.ClientURL()
	l := newMemLog()
	l.add(50)
	f, stop := startForwarder(t, url, l)
	caughtUp(t, f, l)
	if err := exactlyOnce(streamSeqs(t, url, "D1"), 50); err != nil {
		t.Fatal(err)
	}

	// The route's state: the last message of its subject.
	nc, _ := nats.Connect(url)
	js, _ := jetstream.New(nc)
	st, _ := js.Stream(context.Background(), StreamName)
	// It goes once the log is drained, just after the last acknowledgement.
	waitFor(t, 5*time.Second, func() error {
		m, err := st.GetLastMsgForSubject(context.Background(), RouteSubject("D1", "R1"))
		var r bridge.RouteStatus
		if err != nil || json.Unmarshal(m.Data, &r) != nil || r.CompletedStops != 50 || r.RouteCode != "CX01" {
			return fmt.Errorf("route state %+v %v", r, err)
		}
		return nil
	})
	nc.Close()

	// A restart mid-stream.
	stop()
	l.add(20)
	f, stop = startForwarder(t, url, l)
	caughtUp(t, f, l)

	// A crash after the stream's ack, before the local cursor moved: the
	// cursor is back where it was 30 events ago.
	stop()
	_ = l.MetaPut(cursorKey, []byte{0, 0, 0, 0, 0, 0, 0, 40})
	l.add(5)
	f, stop = startForwarder(t, url, l)
	caughtUp(t, f, l)
	if err := exactlyOnce(streamSeqs(t, url, "D1"), 75); err != nil {
		t.Fatalf("after a restart and a crash: %v", err)
	}

	// The server down while the depot goes on, then back.
	port := s.Addr().(interface{ String() string }).String()
	s.Shutdown()
	s.WaitForShutdown()
	l.add(30)
	waitFor(t, 10*time.Second, func() error {
		if h := f.Health(); h.Connected || h.Behind != 30 {
			return fmt.Errorf("health while the link is down: %+v", h)
		}
		return nil
	})
	_, p, _ := cutPort(port)
	s = natsServer(t, dir, p)
	caughtUp(t, f, l)
	if err := exactlyOnce(streamSeqs(t, s.ClientURL(), "D1"), 105); err != nil {
		t.Fatalf("after an outage: %v", err)
	}
	stop()
}

func cutPort(addr string) (string, int, error) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			p, err := strconv.Atoi(addr[i+1:])
			return addr[:i], p, err
		}
	}
	return addr, 0, fmt.Errorf("no port in %q", addr)
}

// TestForwarderRefused: a server that refuses the depot's publishes (no
// permission) is reported and retried; nothing is lost locally.
func TestForwarderRefused(t *testing.T) {
	s := natstest.Start(t, server.Options{Users: []*server.User{{Username: "depot", Password: "pw", Permissions: &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{"$JS.API.>", "_INBOX.>"}}, Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}}}}}})
	l := newMemLog()
	l.add(10)
	f, stop := startForwarder(t, "nats://"+s.Addr().String(), l, nats.UserInfo("depot", "pw"))
	defer stop()
	waitFor(t, 15*time.Second, func() error {
		if h := f.Health(); h.Error == "" || h.Behind != 10 || h.Cursor != 0 {
			return fmt.Errorf("health %+v: want an error and 10 behind", h)
		}
		return nil
	})
	if l.last() != 10 {
		t.Fatal("the local log lost events")
	}
}

// TestForwarderClusterLeaderLoss: into a stream of three replicas, the
// node that leads it is killed while the depot forwards: every event is
// in the stream once, in order.
func TestForwarderClusterLeaderLoss(t *testing.T) {
	t.Parallel()
	ss := natstest.Cluster(t, 3)
	var urls []string
	for _, s := range ss {
		urls = append(urls, s.ClientURL())
	}
	l := newMemLog()
	l.add(100)
	f, err := New(Config{Depot: "D1", URLs: strings.Join(urls, ","), Replicas: 3, Store: l, Route: l.route, LastSeq: l.last,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 60*time.Second, func() error {
		if h := f.Health(); h.Cursor < 50 {
			return fmt.Errorf("health %+v", h)
		}
		return nil
	})
	// Kill the stream's leader.
	var leader *server.Server
	waitFor(t, 10*time.Second, func() error {
		for _, s := range ss {
			if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, StreamName) {
				leader = s
				return nil
			}
		}
		return fmt.Errorf("no stream leader")
	})
	leader.Shutdown()
	l.add(100)
	waitFor(t, 60*time.Second, func() error {
		if h := f.Health(); h.Cursor != l.last() {
			return fmt.Errorf("health %+v, log at %d", h, l.last())
		}
		return nil
	})
	var alive string
	for _, s := range ss {
		if s != leader {
			alive = s.ClientURL()
			break
		}
	}
	if err := exactlyOnce(streamSeqs(t, alive, "D1"), 200); err != nil {
		t.Fatalf("after the leader's loss: %v", err)
	}
}

// BenchmarkForwarder: the forwarder's cost per event sent to a local
// JetStream server (server included, on the same machine). A depot under
// demo load logs about 35 events a second.
func BenchmarkForwarder(b *testing.B) {
	s := natstest.Start(b, server.Options{})
	l := newMemLog()
	l.add(b.N)
	f, err := New(Config{Depot: "D1", URLs: s.ClientURL(), Store: l, Route: l.route, LastSeq: l.last, Rate: 1 << 30,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.ResetTimer()
	go func() { f.Run(ctx); close(done) }()
	for f.Health().Cursor < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	<-done
}

// TestForwarderEdges, from a review: a log not yet stored is waited for,
// never skipped; only events pruned locally are passed over (and counted);
// a URL with a password is refused at start; a stream ahead of the local
// log (another depot with this id, an old backup) stops the forwarder.
func TestForwarderEdges(t *testing.T) {
	if _, err := New(Config{Depot: "D1", URLs: "nats://depot:secret@127.0.0.1:4222"}); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("a password in the URL: %v", err)
	}
	s := natsServer(t, t.TempDir(), -1)
	l := newMemLog()
	l.add(10)
	var ahead atomic.Uint64
	f, err := New(Config{Depot: "D1", URLs: s.ClientURL(), Store: l, Route: l.route,
		LastSeq: func() uint64 { return l.last() + ahead.Load() }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	waitFor(t, 10*time.Second, func() error {
		if h := f.Health(); h.Cursor != 10 {
			return fmt.Errorf("%+v", h)
		}
		return nil
	})
	// The depot is 300 events ahead of its store (a big feed cycle being
	// committed): the forwarder looks at the empty log several times
	// meanwhile and skips nothing; the events go once stored.
	ahead.Store(300)
	n := l.reads.Load()
	waitFor(t, 10*time.Second, func() error {
		if l.reads.Load() < n+5 {
			return fmt.Errorf("the forwarder has not looked yet")
		}
		return nil
	})
	l.add(300)
	ahead.Store(0)
	waitFor(t, 15*time.Second, func() error {
		if h := f.Health(); h.Cursor != 310 || h.Skipped != 0 {
			return fmt.Errorf("%+v", h)
		}
		return nil
	})
	// Pruned locally before sent: passed over and counted.
	l.mu.Lock()
	for i := 310; i < 320; i++ {
		l.events = append(l.events, nil)
	}
	for i := 0; i < 320; i++ {
		l.events[i] = nil
	}
	l.mu.Unlock()
	l.add(5)
	waitFor(t, 15*time.Second, func() error {
		if h := f.Health(); h.Cursor != 325 || h.Skipped != 10 {
			return fmt.Errorf("%+v", h)
		}
		return nil
	})
	cancel()
	<-done
	if err := exactlyOnce(streamSeqs(t, s.ClientURL(), "D1")[:310], 310); err != nil {
		t.Fatal(err)
	}

	// The stream ahead of this depot's log.
	l2 := newMemLog()
	l2.add(3)
	f2, err := New(Config{Depot: "D1", URLs: s.ClientURL(), Store: l2, Route: l2.route, LastSeq: l2.last,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { f2.Run(ctx2); close(done2) }()
	waitFor(t, 10*time.Second, func() error {
		if h := f2.Health(); !strings.Contains(h.Error, "another depot with the same --depot") || h.Cursor != 0 {
			return fmt.Errorf("%+v", h)
		}
		return nil
	})
	cancel2()
	<-done2
}

// TestForwarderPastDuplicateWindow: a crash between the stream's ack and
// the local cursor, found again only after the stream's duplicate window
// has passed (it cannot drop the repeats then): the resume point read
// from the stream still sends nothing twice.
func TestForwarderPastDuplicateWindow(t *testing.T) {
	t.Parallel()
	s := natsServer(t, t.TempDir(), -1)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	const window = 100 * time.Millisecond
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: StreamName, Subjects: []string{"depot.>"},
		Duplicates: window}); err != nil {
		t.Fatal(err)
	}
	l := newMemLog()
	l.add(20)
	f, stop := startForwarder(t, s.ClientURL(), l)
	caughtUp(t, f, l)
	stop()
	_ = l.MetaPut(cursorKey, []byte{0, 0, 0, 0, 0, 0, 0, 5}) // the crash: 15 acknowledged events not recorded
	time.Sleep(3 * window)                                   // the outage outlasts the window: that is the point
	l.add(10)
	f, stop = startForwarder(t, s.ClientURL(), l)
	defer stop()
	caughtUp(t, f, l)
	if err := exactlyOnce(streamSeqs(t, s.ClientURL(), "D1"), 30); err != nil {
		t.Fatal(err)
	}
}

// TestForwarderStrangers, from a review: a message on the depot's subject
// that the forwarder did not send (no Nats-Msg-Id of ours) does not stop
// it; an event larger than the stream takes is passed over and counted,
// not retried for ever with the log stuck behind it; a drained backlog
// leaves one state per route, as of its end, not one per event (each
// newer than the event it followed).
func TestForwarderStrangers(t *testing.T) {
	t.Parallel()
	s := natsServer(t, t.TempDir(), -1)
	l := newMemLog()
	l.add(50)
	f, stop := startForwarder(t, s.ClientURL(), l)
	caughtUp(t, f, l)

	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	st, err := js.Stream(ctx, StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.MaxMsgSize; got != MaxEventBytes {
		t.Fatalf("the stream takes messages of %d bytes, want %d", got, MaxEventBytes)
	}
	// The state goes once the log is drained, just after the last
	// acknowledgement that caughtUp saw.
	if n := statesOf(t, st, "R1"); n != 1 {
		t.Fatalf("a backlog of 50 updates of R1 left %d states of it, want 1", n)
	}
	m, err := st.GetLastMsgForSubject(ctx, RouteSubject("D1", "R1"))
	var r bridge.RouteStatus
	if err != nil || json.Unmarshal(m.Data, &r) != nil || r.CompletedStops != 50 {
		t.Fatalf("R1's state after the backlog: %+v %v", r, err)
	}

	// A stranger's message on our subject, then a restart (it is what the
	// resync reads).
	stop()
	if _, err := js.Publish(ctx, EventsSubject("D1"), []byte(`{"seq":999}`)); err != nil {
		t.Fatal(err)
	}
	// An event too large for the stream, between two ordinary ones.
	l.add(1)
	l.mu.Lock()
	big, _ := json.Marshal(map[string]any{"seq": len(l.events) + 1, "type": "note", "payload": map[string]any{"text": strings.Repeat("x", MaxEventBytes)}})
	l.events = append(l.events, big)
	l.mu.Unlock()
	l.add(1)
	f, _ = startForwarder(t, s.ClientURL(), l)
	waitFor(t, 15*time.Second, func() error {
		if h := f.Health(); h.Cursor != 53 || h.Skipped != 1 || !h.Connected {
			return fmt.Errorf("health %+v, want cursor 53, 1 skipped", h)
		}
		return nil
	})
	ours := readSeqs(t, s.ClientURL(), "D1", true)
	if err := exactlyOnce(ours[:51], 51); err != nil || len(ours) != 52 || ours[51] != 53 {
		t.Fatalf("the stream holds %v after the stranger and the large event (%v)", ours[min(len(ours), 48):], err)
	}
}

// TestForwarderRouteStatesThrottled: a depot's route changes with every
// fix, and the stream keeps every state (its per-subject limit is the
// events' too): a route's state goes at most once per RouteEvery, not
// once per event, or the states would double the stream.
func TestForwarderRouteStatesThrottled(t *testing.T) {
	t.Parallel()
	s := natsServer(t, t.TempDir(), -1)
	l := newMemLog()
	f, _ := startForwarder(t, s.ClientURL(), l)
	for range 5 {
		l.add(1)
		caughtUp(t, f, l)
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if n := statesOf(t, st, "R1"); n != 1 {
		t.Fatalf("5 events of R1, each sent alone, left %d states of it in the stream; want 1 a minute", n)
	}
}

// TestForwarderLinger: woken by every commit of a depot that stores one
// event per commit, the forwarder reads the log at most once per Linger
// (plus the first, at once), not once per event, and still sends all.
func TestForwarderLinger(t *testing.T) {
	t.Parallel()
	s := natsServer(t, t.TempDir(), -1)
	l := newMemLog()
	wake := make(chan struct{}, 1)
	f, err := New(Config{Depot: "D1", URLs: s.ClientURL(), Store: l, Route: l.route, LastSeq: l.last, Wake: wake,
		Linger: 100 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	l.add(1)
	caughtUp(t, f, l)
	before, began := l.reads.Load(), time.Now()
	for range 100 {
		l.add(1)
		select {
		case wake <- struct{}{}:
		default:
		}
		time.Sleep(5 * time.Millisecond) // a depot's commits, not a wait for a result
	}
	caughtUp(t, f, l)
	reads, took := l.reads.Load()-before, time.Since(began)
	// A slower machine only makes fewer reads; every read past the
	// linger's pace is one too many (without it: one per event).
	if most := int64(took/(100*time.Millisecond)) + 3; reads > most {
		t.Fatalf("%d reads of the log for 100 events in %v; want at most %d", reads, took.Round(time.Millisecond), most)
	}
	t.Logf("%d reads for 100 events in %v", reads, took.Round(time.Millisecond))
	if err := exactlyOnce(streamSeqs(t, s.ClientURL(), "D1"), 101); err != nil {
		t.Fatal(err)
	}
}

// TestForwarderBatches: on a stream it created (atomic batches allowed) a
// backlog goes a page per batch, each stored whole; on a stream made
// without them, event by event. Either way each event once, in order.
func TestForwarderBatches(t *testing.T) {
	t.Parallel()
	for _, allowed := range []bool{true, false} {
		t.Run(fmt.Sprint("atomic=", allowed), func(t *testing.T) {
			s := natsServer(t, t.TempDir(), -1)
			if !allowed {
				nc, err := nats.Connect(s.ClientURL())
				if err != nil {
					t.Fatal(err)
				}
				js, _ := jetstream.New(nc)
				if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: StreamName, Subjects: []string{"depot.>"}}); err != nil {
					t.Fatal(err)
				}
				nc.Close()
			}
			l := newMemLog()
			l.add(1000)
			f, _ := startForwarder(t, s.ClientURL(), l)
			caughtUp(t, f, l)
			h := f.Health()
			if allowed && (h.Batches < 5 || h.Batches > 20) || !allowed && h.Batches != 0 {
				t.Fatalf("1000 events in %d batches (atomic batches allowed: %v)", h.Batches, allowed)
			}
			if h.Sent != 1000 {
				t.Fatalf("sent %d", h.Sent)
			}
			if err := exactlyOnce(streamSeqs(t, s.ClientURL(), "D1"), 1000); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// statesOf waits for the first state of route id of depot D1 in the stream
// (it goes once the log is drained, just after the acknowledgement a test
// waited for) and returns how many the stream holds.
func statesOf(t *testing.T, st jetstream.Stream, id string) uint64 {
	t.Helper()
	var n uint64
	waitFor(t, 5*time.Second, func() error {
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(RouteSubject("D1", id)))
		if err != nil {
			return err
		}
		if n = info.State.Subjects[RouteSubject("D1", id)]; n == 0 {
			return fmt.Errorf("no state of %s yet", id)
		}
		return nil
	})
	return n
}
