package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/depotcc/depot/ui/auth"
	"github.com/labstack/echo/v4"
)

// Hub fans the depot's published events out to SSE clients. It is fed from
// an in-process subscription on depot/{d}/events, so SSE sees exactly what
// MQTT dashboards see. A client that cannot keep up is cut off rather than
// slowing anyone: its EventSource reconnects with Last-Event-ID and reads
// what it missed from the log.
type Hub struct {
	mu   sync.Mutex
	subs map[*hubSub]struct{}
}

type hubSub struct {
	ch     chan []byte
	lagged chan struct{}
	once   sync.Once
}

// Publish hands one published message (an envelope or a batch) to every
// client without blocking.
func (h *Hub) Publish(payload []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- payload:
		default:
			s.once.Do(func() { close(s.lagged) })
		}
	}
}

func (h *Hub) add() *hubSub {
	s := &hubSub{ch: make(chan []byte, 1024), lagged: make(chan struct{})}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*hubSub]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *Hub) remove(s *hubSub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// CutAll ends every SSE stream (they reconnect with Last-Event-ID); for
// tests of resumption.
func (h *Hub) CutAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.once.Do(func() { close(s.lagged) })
	}
}

// sseKeepAlive is how often an idle stream gets a comment, so proxies that
// cut idle connections leave it alone.
const sseKeepAlive = 15 * time.Second

// envelopes splits a published message into (seq, raw envelope) pairs.
func envelopes(payload []byte) ([]json.RawMessage, []uint64) {
	var raws []json.RawMessage
	p := bytes.TrimSpace(payload)
	if len(p) > 0 && p[0] == '[' {
		if json.Unmarshal(p, &raws) != nil {
			return nil, nil
		}
	} else {
		raws = []json.RawMessage{p}
	}
	seqs := make([]uint64, len(raws))
	for i, r := range raws {
		var e struct {
			Seq uint64 `json:"seq"`
		}
		_ = json.Unmarshal(r, &e)
		seqs[i] = e.Seq
	}
	return raws, seqs
}

// stream is the SSE fallback (GET /api/v1/stream): every event after
// Last-Event-ID (or ?after=), then live, each with id: = seq.
func (s *Server) stream(c echo.Context) error {
	last := uint64(0)
	for _, v := range []string{c.Request().Header.Get("Last-Event-ID"), c.QueryParam("after")} {
		if v == "" {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "Last-Event-ID / after: want a seq number")
		}
		last = n
		break
	}
	sub := s.hub.add() // first, so nothing published while we read the log is lost
	defer s.hub.remove(sub)

	w := c.Response()
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set(echo.HeaderCacheControl, "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	send := func(seq uint64, raw []byte) error {
		if seq <= last {
			return nil
		}
		last = seq
		_, err := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", seq, raw)
		return err
	}
	// Catch up from the log.
	oldest, err := s.cfg.Archive.OldestSeq()
	if err != nil {
		return nil
	}
	if last > 0 && oldest > last+1 {
		fmt.Fprintf(w, "event: reset\ndata: {\"oldestSeq\":%d}\n\n", oldest) // pruned: start again from /state
		w.Flush()
		return nil
	}
	for {
		evs, err := s.cfg.Archive.EventsAfter(last, maxEventPage)
		if err != nil {
			return nil
		}
		for _, e := range evs {
			_, seqs := envelopes(e)
			if err := send(seqs[0], e); err != nil {
				return nil
			}
		}
		if len(evs) < maxEventPage {
			break
		}
	}
	w.Flush()

	ka := time.NewTicker(sseKeepAlive)
	defer ka.Stop()
	// The stream ends within a second when its user is deleted, re-roled
	// or disabled (or her password reset): her token would be refused
	// now, and the client's reconnect is.
	cl, _ := c.Get(claimsKey).(*auth.Claims)
	recheck := time.NewTicker(time.Second)
	defer recheck.Stop()
	for {
		select {
		case <-c.Request().Context().Done():
			return nil
		case <-recheck.C:
			if !s.cfg.Accounts.StillValid(cl) {
				return nil
			}
			continue
		case <-s.done: // Shutdown does not cancel running handlers
			return nil
		case <-sub.lagged:
			return nil // the client reconnects with Last-Event-ID
		case <-ka.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
		case p := <-sub.ch:
			if !s.cfg.Accounts.StillValid(cl) {
				return nil
			}
			raws, seqs := envelopes(p)
			for i, r := range raws {
				if err := send(seqs[i], r); err != nil {
					return nil
				}
			}
		}
		w.Flush()
	}
}
