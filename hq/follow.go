package hq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/depotcc/depot/bridge/upstream"
	"github.com/nats-io/nats.go/jetstream"
)

// Subjects the instance reads.
const (
	allEvents = "depot.*.events"
	allRoutes = "depot.*.routes.*"
)

// follow builds the picture from the stream and keeps it current, for as
// long as the instance runs. An ordered consumer rides out a lost leader
// or a reconnect by itself (it restarts after the last message it
// delivered); only what it cannot get past (the stream deleted) starts the
// picture over.
func (h *HQ) follow(ctx context.Context) {
	for ctx.Err() == nil {
		err := h.load(ctx)
		if ctx.Err() != nil {
			return
		}
		h.mu.Lock()
		h.loadErr = clip(err)
		h.mu.Unlock()
		h.cfg.Log.Warn("hq: reading the stream", "err", err)
		h.fleet.reset()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

var clip = upstream.Clip

// streamCheck is how often an instance looks that its stream is the one
// it read, unless Config.streamCheck says otherwise (tests).
const streamCheck = 5 * time.Second

// load reads the last state of every route, then every event since the
// window began, and goes on with the live ones.
func (h *HQ) load(ctx context.Context) error {
	s, err := h.js.Stream(ctx, upstream.StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("no stream %s yet: no depot has forwarded to this cluster", upstream.StreamName)
	}
	if err != nil {
		return err
	}
	last, created := s.CachedInfo().State.LastSeq, s.CachedInfo().Created
	if err := h.loadRoutes(ctx, s); err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	start := time.Now().Add(-h.cfg.Window)
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{allEvents},
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start})
	if err != nil {
		return err
	}
	it, err := c.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	// An ordered consumer outlives its stream: on one deleted and made
	// again it would wait for the old sequence numbers and hold a picture
	// of a stream that is gone. Looked for now and then; found, the
	// picture starts over.
	gone := make(chan error, 1)
	wctx, endWatch := context.WithCancel(ctx)
	defer endWatch()
	go func() {
		t := time.NewTicker(cmp.Or(h.cfg.streamCheck, streamCheck))
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			cctx, cancel := context.WithTimeout(wctx, 3*time.Second)
			s, err := h.js.Stream(cctx, upstream.StreamName)
			cancel()
			if errors.Is(err, jetstream.ErrStreamNotFound) || (err == nil && !s.CachedInfo().Created.Equal(created)) {
				gone <- fmt.Errorf("stream %s deleted or made again: reading it anew", upstream.StreamName)
				it.Stop()
				return
			}
		}
	}()
	if info := c.CachedInfo(); info != nil && info.NumPending == 0 {
		h.fleet.caughtUp(last)
	}
	h.mu.Lock()
	h.loadErr = ""
	h.mu.Unlock()
	for {
		m, err := it.Next()
		if err != nil {
			select {
			case err = <-gone:
			default:
			}
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		h.fleet.apply(m.Subject(), md.Sequence.Stream, md.Timestamp, m.Data())
		if md.NumPending == 0 || md.Sequence.Stream >= last {
			h.fleet.caughtUp(last)
		}
	}
}

// loadRoutes reads the last message of every route subject.
func (h *HQ) loadRoutes(ctx context.Context, s jetstream.Stream) error {
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{allRoutes},
		DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy, InactiveThreshold: 10 * time.Second})
	if err != nil {
		return err
	}
	it, err := c.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	if info := c.CachedInfo(); info == nil || info.NumPending == 0 {
		return nil
	}
	for ctx.Err() == nil {
		m, err := it.Next(jetstream.NextMaxWait(10 * time.Second))
		if err != nil {
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		h.fleet.setRoute(m.Subject(), md.Sequence.Stream, m.Data())
		if md.NumPending == 0 {
			// Not at the first past last: a route whose newest state came
			// in after the stream was read would be left out.
			return nil
		}
	}
	return ctx.Err()
}
