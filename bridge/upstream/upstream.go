// Package upstream forwards a depot's event log to a NATS JetStream
// cluster (the fleet, docs/design.md §8): every event, in seq order, on
// depot.<depot>.events with Nats-Msg-Id <depot>:<seq>, so the stream holds
// each exactly once; and each route's current state as the last message
// of depot.<depot>.routes.<route>. The local event log is the outbox: a
// WAN outage changes nothing at the depot, and when the link returns the
// backlog drains at a bounded rate.
package upstream

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Store is the depot's side: its event log, and a small record where the
// forwarder keeps its cursor.
type Store interface {
	EventsAfter(after uint64, limit int) ([]json.RawMessage, error)
	OldestSeq() (uint64, error)         // the oldest event kept (0: none)
	MetaGet(key string) ([]byte, error) // bridge.ErrNotFound when absent
	MetaPut(key string, v []byte) error
}

// Config sets up a Forwarder.
type Config struct {
	Depot    string
	URLs     string // nats://h1:4222,nats://h2:4222
	Creds    string // NATS credentials file; optional
	CA       string // CA of the servers' TLS certificates; optional
	Replicas int    // of the DEPOTS stream when it is created; 1
	MaxAge   time.Duration
	Store    Store
	// Route returns a route's current status, published as the last
	// message of its subject when a route:update passes.
	Route func(id string) (bridge.RouteStatus, bool)
	// LastSeq is the log's newest seq, for "events behind".
	LastSeq func() uint64
	// Rate bounds the events sent per second while draining a backlog, so
	// that catching up does not take the depot's own time; 2000 when 0.
	Rate int
	// Wake, when set, is signalled after each commit that stored events
	// (bridge.Depot.OnCommit): an event leaves at once instead of at the
	// next poll.
	Wake <-chan struct{}
	// RouteEvery is the least time between two states of one route (a
	// minute when 0). The events carry every change; a state is only
	// where a new reader starts, and the stream keeps them all (its
	// per-subject limit is the events' too), so one per event would
	// double the stream and the forwarder's work.
	RouteEvery time.Duration
	// Linger is the least time between two reads of the log after a
	// wake-up (200 ms when 0; negative: none). At a depot's pace each
	// commit stores one event, and a read, a wake-up and a round trip per
	// event were most of the forwarder's cost; the first event after a
	// quiet spell still leaves at once.
	Linger time.Duration
	Log    *slog.Logger
}

// StreamName and its subjects.
const (
	StreamName = "DEPOTS"
	cursorKey  = "upstream.cursor"
	batch      = 200
	// ackWait bounds the wait for the stream's acknowledgement. A publish
	// lost with a dying leader is never answered: waiting long only adds
	// to the lag, and publishing again is safe (Nats-Msg-Id).
	ackWait = 3 * time.Second
	// maxBackoff bounds the wait between tries: a link back from an
	// outage is used within seconds, and a try costs one connection.
	maxBackoff = 5 * time.Second
	// saveEvery bounds how often the cursor is written to the store.
	saveEvery = 5 * time.Second
	// MaxEventBytes is the largest event sent, and the stream's
	// MaxMsgSize when the forwarder creates it: readers take no more
	// (hq drops a larger one), and the depot's own events are far smaller.
	MaxEventBytes = 64 << 10
)

// EventsSubject is where a depot's events go.
func EventsSubject(depot string) string { return "depot." + depot + ".events" }

// RouteSubject is where a route's current state goes.
func RouteSubject(depot, route string) string { return "depot." + depot + ".routes." + route }

// Health is the forwarder's state for the heartbeat, /healthz and /metrics.
type Health struct {
	Connected bool      `json:"connected"`
	LastAck   time.Time `json:"lastAck,omitzero"`
	Cursor    uint64    `json:"cursor"` // the last event the stream acknowledged
	Behind    uint64    `json:"behind"` // events not yet in the stream
	Error     string    `json:"error,omitempty"`
	Sent      int64     `json:"sent"`
	Batches   int64     `json:"batches"` // atomic batches the stream took (Sent counts their events too)
	Skipped   uint64    `json:"skipped"` // events pruned locally before they could be sent
}

// Forwarder sends the log upstream.
type Forwarder struct {
	cfg Config

	mu     sync.Mutex
	health Health
	nc     *nats.Conn
	opts   []nats.Option // tests' extra connection options

	// dirty are the routes whose state is still to send, sent[r] when
	// r's state last went; only Run's goroutine touches them, and they
	// outlive a session.
	dirty map[string]bool
	sent  map[string]time.Time
}

// New checks cfg and returns a forwarder; Run connects.
func New(cfg Config) (*Forwarder, error) {
	if cfg.URLs == "" {
		return nil, errors.New("upstream: no NATS URL")
	}
	if !bridge.ValidID(cfg.Depot) || strings.ContainsAny(cfg.Depot, ".") {
		return nil, fmt.Errorf("upstream: depot id %q cannot be a NATS subject token", cfg.Depot)
	}
	if err := CheckURLs(cfg.URLs); err != nil {
		return nil, err
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 2000
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.RouteEvery <= 0 {
		cfg.RouteEvery = time.Minute
	}
	if cfg.Linger == 0 {
		cfg.Linger = 200 * time.Millisecond
	}
	return &Forwarder{cfg: cfg, dirty: map[string]bool{}, sent: map[string]time.Time{}}, nil
}

// CheckURLs checks --upstream: nats:// or tls:// URLs, comma-separated,
// none with a user or password (a URL shows in ps, logs and health).
func CheckURLs(urls string) error {
	for _, u := range strings.Split(urls, ",") {
		pu, err := url.Parse(strings.TrimSpace(u))
		if err != nil || pu.Host == "" || (pu.Scheme != "nats" && pu.Scheme != "tls") {
			return errors.New("upstream: each URL must be nats://host:port or tls://host:port (put credentials in --upstream-creds, not the URL)")
		}
		if pu.User != nil {
			return errors.New("upstream: a URL holds a user or password: use --upstream-creds (a URL shows in ps, logs and health)")
		}
	}
	return nil
}

// AuthOptions are the connection options of --upstream-creds (a NATS
// credentials file) and --upstream-ca (the servers' CA), either optional.
func AuthOptions(creds, ca string) []nats.Option {
	var opts []nats.Option
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	if ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	return opts
}

// Health reports the forwarder's state now.
func (f *Forwarder) Health() Health {
	f.mu.Lock()
	h := f.health
	h.Connected = h.Connected && f.nc != nil && f.nc.IsConnected()
	f.mu.Unlock()
	if f.cfg.LastSeq != nil {
		if last := f.cfg.LastSeq(); last > h.Cursor {
			h.Behind = last - h.Cursor
		}
	}
	return h
}

func (f *Forwarder) set(fn func(*Health)) {
	f.mu.Lock()
	fn(&f.health)
	f.mu.Unlock()
}

// Run forwards until ctx ends, reconnecting and resyncing after any error.
func (f *Forwarder) Run(ctx context.Context) {
	if b, err := f.cfg.Store.MetaGet(cursorKey); err == nil && len(b) == 8 {
		f.set(func(h *Health) { h.Cursor = binary.BigEndian.Uint64(b) })
	}
	wait := time.Second
	for ctx.Err() == nil {
		began := time.Now()
		err := f.session(ctx)
		if time.Since(began) > time.Minute {
			wait = time.Second // a session that ran a while: the next failure is news
		}
		if ctx.Err() != nil {
			break
		}
		f.set(func(h *Health) { h.Connected, h.Error = false, Clip(err) })
		// Jittered: depots that lost the same link come back apart.
		in := wait/2 + rand.N(wait/2+1)
		f.cfg.Log.Warn("upstream: retrying", "in", in.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(in):
		}
		wait = min(wait*2, maxBackoff)
	}
	f.mu.Lock()
	if f.nc != nil {
		f.nc.Close()
	}
	f.mu.Unlock()
}

// Clip is an error's text for health and logs: at most 200 bytes.
func Clip(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// session is one connection: stream ensured, cursor resynced from the
// stream, then the log sent until an error.
func (f *Forwarder) session(ctx context.Context) error {
	opts := []nats.Option{nats.Name("depot " + f.cfg.Depot), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			f.set(func(h *Health) { h.Error = Clip(err) })
			f.cfg.Log.Warn("upstream", "err", err)
		})}
	opts = append(opts, f.opts...)
	opts = append(opts, AuthOptions(f.cfg.Creds, f.cfg.CA)...)
	nc, err := nats.Connect(f.cfg.URLs, opts...)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	f.mu.Lock()
	if f.nc != nil {
		f.nc.Close()
	}
	f.nc = nc
	f.mu.Unlock()
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	stream, err := f.ensureStream(sctx, js)
	cancel()
	if err != nil {
		return err
	}
	cursor, err := f.resync(ctx, stream)
	if err != nil {
		return err
	}
	f.set(func(h *Health) { h.Connected, h.Error, h.Cursor = true, "", cursor })
	atomic := false
	if info := stream.CachedInfo(); info != nil {
		atomic = info.Config.AllowAtomicPublish
	}
	f.cfg.Log.Info("upstream: forwarding", "stream", StreamName, "from", cursor+1, "batches", atomic)
	return f.send(ctx, js, cursor, atomic)
}

// ensureStream creates DEPOTS when missing; an existing one is used as is.
func (f *Forwarder) ensureStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, StreamName)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	s, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: StreamName, Subjects: []string{"depot.>"},
		Replicas: f.cfg.Replicas, MaxAge: f.cfg.MaxAge, MaxMsgsPerSubject: -1, Duplicates: 2 * time.Minute,
		MaxMsgSize: MaxEventBytes, Storage: jetstream.FileStorage, AllowAtomicPublish: true})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.Stream(ctx, StreamName)
	}
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", StreamName, err)
	}
	if f.cfg.Replicas == 1 && js.Conn().ConnectedClusterName() != "" {
		f.cfg.Log.Warn("upstream: stream created with one replica on a cluster: it is lost with its server (--upstream-replicas 3)", "stream", StreamName)
	}
	return s, nil
}

// resync finds where to go on: the stream's last event of this depot is
// the truth (a crash between its ack and the local cursor, or an outage
// longer than the duplicate window, must neither double nor skip);
// without one, the local cursor.
func (f *Forwarder) resync(ctx context.Context, s jetstream.Stream) (uint64, error) {
	local := uint64(0)
	if b, err := f.cfg.Store.MetaGet(cursorKey); err == nil && len(b) == 8 {
		local = binary.BigEndian.Uint64(b)
	} else if err != nil && !errors.Is(err, bridge.ErrNotFound) {
		return 0, err
	}
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := s.GetLastMsgForSubject(gctx, EventsSubject(f.cfg.Depot))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return local, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last event in the stream: %w", err)
	}
	seq, ok := msgSeq(m.Header.Get(jetstream.MsgIDHeader), f.cfg.Depot)
	if !ok {
		// Someone else publishes on our subject (the account's permissions
		// allow it: docs/fleet.md). Stopping would hold the depot's events
		// back for a stranger's message; the local cursor is the next best
		// truth (re-sent events inside the duplicate window are dropped
		// by the stream).
		f.cfg.Log.Warn("upstream: the stream's last message on our subject is not ours: resuming from the local cursor; check who may publish there",
			"subject", EventsSubject(f.cfg.Depot), "cursor", local)
		return local, nil
	}
	if f.cfg.LastSeq != nil && seq > f.cfg.LastSeq() {
		// A store restored from an older backup, or another depot with
		// this id: what follows would be taken for what was sent.
		return 0, fmt.Errorf("the stream already holds event %d of depot %s, past this depot's log (%d): another depot with the same --depot, or a store older than what was forwarded", seq, f.cfg.Depot, f.cfg.LastSeq())
	}
	if seq != local {
		_ = f.cfg.Store.MetaPut(cursorKey, binary.BigEndian.AppendUint64(nil, seq))
	}
	return seq, nil
}

// msgSeq reads "<depot>:<seq>".
func msgSeq(id, depot string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, depot+":")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}

// send publishes the log after cursor, in order, at most Rate a second.
// The cursor is written now and then: the stream is the truth (resync),
// the record only a hint.
//
// Where the stream allows atomic batches (the forwarder creates it so),
// the events read together go as one batch: stored all or none, in order,
// with one acknowledgement, so a link with a 50 ms round trip carries a
// page of events per round trip instead of one event. Elsewhere each
// event is acknowledged before the next goes.
//
// Route states go when the log is drained, not with each event: while a
// backlog drains a route's current state is newer than the events still
// to go, and a reader that took it as of that event would see the route
// jump ahead and back. Sent at the end, each state is as of the last
// event sent (or a commit newer, which the next event's delta agrees with).
func (f *Forwarder) send(ctx context.Context, js jetstream.JetStream, cursor uint64, atomic bool) error {
	every := time.Second / time.Duration(f.cfg.Rate)
	poll := 100 * time.Millisecond
	if f.cfg.Wake != nil {
		poll = time.Second // only a safety net: commits wake it
	}
	idle := time.NewTicker(poll)
	defer idle.Stop()
	saved, savedAt := cursor, time.Now()
	// The record is written at most every saveEvery (and at the end): it
	// is a store write with its fsync, and at a depot's pace each commit
	// sends one event.
	save := func(now bool) {
		if cursor != saved && (now || time.Since(savedAt) >= saveEvery) &&
			f.cfg.Store.MetaPut(cursorKey, binary.BigEndian.AppendUint64(nil, cursor)) == nil {
			saved, savedAt = cursor, time.Now()
		}
	}
	defer save(true)
	var (
		read    time.Time // the last read of the log
		pending []outMsg  // read, not yet sent
		start   time.Time // of the page, for the rate
		sent    int       // in the page
	)
	// flush sends what is pending and paces the page.
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := f.publish(ctx, js, pending, atomic); err != nil {
			return err
		}
		cursor = pending[len(pending)-1].seq
		n := len(pending)
		f.set(func(h *Health) { h.Cursor, h.LastAck = cursor, time.Now().UTC(); h.Sent += int64(n) })
		for _, m := range pending {
			if m.route != "" && len(f.dirty) < maxDirty {
				f.dirty[m.route] = true
			}
		}
		pending = pending[:0]
		sent += n
		if d := time.Duration(sent)*every - time.Since(start); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
		return nil
	}
	for ctx.Err() == nil {
		read = time.Now()
		evs, err := f.cfg.Store.EventsAfter(cursor, batch)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			// Only events pruned locally are passed over: one not yet
			// written (the store behind the depot) is waited for.
			if oldest, err := f.cfg.Store.OldestSeq(); err == nil && oldest > cursor+1 {
				f.cfg.Log.Warn("upstream: events pruned before they were sent", "from", cursor+1, "to", oldest-1)
				f.set(func(h *Health) { h.Skipped += oldest - 1 - cursor })
				cursor = oldest - 1
				continue
			}
			save(false)
			if err := f.drained(ctx, js); err != nil {
				return err
			}
			f.wait(ctx, idle.C, read)
			continue
		}
		start, sent = time.Now(), 0
		next := cursor // the last seq read, sent or pending
		for _, raw := range evs {
			var env struct {
				Seq     uint64 `json:"seq"`
				Type    string `json:"type"`
				Payload struct {
					RouteID string `json:"routeId"`
				} `json:"payload"`
			}
			if json.Unmarshal(raw, &env) != nil || env.Seq <= next {
				// Unreadable: past it, not again and again. What is
				// pending goes first, so the cursor passes only what went.
				if err := flush(); err != nil {
					return err
				}
				f.cfg.Log.Warn("upstream: an event of the log cannot be read; passed over", "after", cursor)
				cursor++
				next = cursor
				continue
			}
			if gap := env.Seq - next - 1; gap > 0 {
				// The store writes events in seq order: a hole is events
				// dropped or pruned locally, never one still to come.
				f.cfg.Log.Warn("upstream: events missing from the local log", "from", next+1, "to", env.Seq-1)
				f.set(func(h *Health) { h.Skipped += gap })
			}
			next = env.Seq
			if len(raw) > MaxEventBytes {
				// The stream would refuse it on every try, and the log
				// behind it would never leave.
				if err := flush(); err != nil {
					return err
				}
				f.cfg.Log.Warn("upstream: an event too large for the stream; passed over", "seq", env.Seq, "bytes", len(raw), "max", MaxEventBytes)
				cursor = env.Seq
				f.set(func(h *Health) { h.Cursor = cursor; h.Skipped++ })
				continue
			}
			m := outMsg{seq: env.Seq, raw: raw}
			if env.Type == bridge.EventRouteUpdate && f.cfg.Route != nil &&
				bridge.ValidID(env.Payload.RouteID) && !strings.Contains(env.Payload.RouteID, ".") {
				m.route = env.Payload.RouteID
			}
			pending = append(pending, m)
			if !atomic {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		save(false)
		if len(evs) < batch {
			// A short page is the end of the log: no need to read it
			// again to learn that (a read per commit is the cost here).
			if err := f.drained(ctx, js); err != nil {
				return err
			}
			f.wait(ctx, idle.C, read)
		}
	}
	return nil
}

// outMsg is an event on its way: its seq, its bytes, and the route whose
// state it changes ("" when none).
type outMsg struct {
	seq   uint64
	raw   json.RawMessage
	route string
}

// publish sends msgs in order and returns once the stream holds them all:
// as one atomic batch when the stream allows it and there are several, else
// one by one. A batch the stream refuses as a whole (too many batches in
// flight on the stream, a duplicate in it, batches turned off) stored
// nothing, so its events then go one by one; an error of the link may have
// come after the stream took the batch, so it ends the session and resync
// asks the stream.
func (f *Forwarder) publish(ctx context.Context, js jetstream.JetStream, msgs []outMsg, atomic bool) error {
	if atomic && len(msgs) > 1 {
		refused, err := f.publishBatch(ctx, js.Conn(), msgs)
		if err != nil {
			return err
		}
		if refused == "" {
			f.set(func(h *Health) { h.Batches++ })
			return nil
		}
		f.cfg.Log.Debug("upstream: batch refused; sending its events one by one", "reason", refused, "events", len(msgs))
	}
	for _, m := range msgs {
		msg := f.eventMsg(m)
		pctx, cancel := context.WithTimeout(ctx, ackWait)
		_, err := js.PublishMsg(pctx, msg, jetstream.WithExpectStream(StreamName))
		cancel()
		if err != nil {
			return fmt.Errorf("publish seq %d: %w", m.seq, err)
		}
	}
	return nil
}

func (f *Forwarder) eventMsg(m outMsg) *nats.Msg {
	msg := nats.NewMsg(EventsSubject(f.cfg.Depot))
	msg.Data = m.raw
	msg.Header.Set(jetstream.MsgIDHeader, f.cfg.Depot+":"+strconv.FormatUint(m.seq, 10))
	return msg
}

// The headers of an atomic batch (nats-server 2.12 and later).
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// publishBatch sends msgs as one atomic batch: each message but the last
// plainly, the last with the commit header as a request whose answer is
// the batch's acknowledgement. refused is the stream's reason when it
// stored none of it.
func (f *Forwarder) publishBatch(ctx context.Context, nc *nats.Conn, msgs []outMsg) (refused string, err error) {
	id := nuid.Next()
	var reply *nats.Msg
	for i, m := range msgs {
		msg := f.eventMsg(m)
		msg.Header.Set(jetstream.ExpectedStreamHeader, StreamName)
		msg.Header.Set(batchIDHeader, id)
		msg.Header.Set(batchSeqHeader, strconv.Itoa(i+1))
		if i < len(msgs)-1 {
			if err := nc.PublishMsg(msg); err != nil {
				return "", fmt.Errorf("publish seq %d: %w", m.seq, err)
			}
			continue
		}
		msg.Header.Set(batchCommitHeader, "1")
		pctx, cancel := context.WithTimeout(ctx, ackWait)
		reply, err = nc.RequestMsgWithContext(pctx, msg)
		cancel()
		if err != nil {
			return "", fmt.Errorf("publish seqs %d-%d: %w", msgs[0].seq, m.seq, err)
		}
	}
	var ack struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Stream string `json:"stream"`
		Batch  string `json:"batch"`
		Count  int    `json:"count"`
	}
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return "", fmt.Errorf("publish seqs %d-%d: an answer that is not an acknowledgement", msgs[0].seq, msgs[len(msgs)-1].seq)
	}
	if ack.Error != nil {
		// An error answered by the stream is a batch it did not store.
		return Clip(fmt.Errorf("%d %s", ack.Error.ErrCode, ack.Error.Description)), nil
	}
	if ack.Stream != StreamName || ack.Batch != id || ack.Count != len(msgs) {
		return "", fmt.Errorf("publish seqs %d-%d: acknowledged as batch %q of %d in %q", msgs[0].seq, msgs[len(msgs)-1].seq, ack.Batch, ack.Count, ack.Stream)
	}
	return "", nil
}

// wait waits for new events: a commit's wake-up, or the next poll; and
// then for the rest of Linger since the last read, so that the events of
// the commits meanwhile leave together.
func (f *Forwarder) wait(ctx context.Context, poll <-chan time.Time, read time.Time) {
	select {
	case <-ctx.Done():
		return
	case <-poll:
	case <-f.cfg.Wake:
	}
	if d := f.cfg.Linger - time.Since(read); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select { // the wake-ups meanwhile: their events are read now
		case <-f.cfg.Wake:
		default:
		}
	}
}

// drained is the log sent: the routes' states that are due go.
func (f *Forwarder) drained(ctx context.Context, js jetstream.JetStream) error {
	now := time.Now()
	for id := range f.dirty {
		if now.Sub(f.sent[id]) < f.cfg.RouteEvery {
			continue
		}
		if err := f.publishRoute(ctx, js, id); err != nil {
			return fmt.Errorf("route %s: %w", id, err)
		}
		delete(f.dirty, id)
		f.sent[id] = now
	}
	if len(f.sent) > maxDirty { // routes long gone
		for id, at := range f.sent {
			if now.Sub(at) > f.cfg.RouteEvery {
				delete(f.sent, id)
			}
		}
	}
	return nil
}

// maxDirty bounds the routes whose state waits for the end of a drain (a
// depot has tens; a log that names more only costs their late states).
const maxDirty = 10000

// publishRoute sends a route's current state on its own subject (the
// stream keeps them all; a reader takes the last per subject).
func (f *Forwarder) publishRoute(ctx context.Context, js jetstream.JetStream, id string) error {
	r, ok := f.cfg.Route(id)
	if !ok {
		return nil
	}
	b, err := r.AppendJSON(nil)
	if err != nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, ackWait)
	defer cancel()
	_, err = js.Publish(pctx, RouteSubject(f.cfg.Depot, id), b)
	return err
}
