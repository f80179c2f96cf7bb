package hq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/bridge/upstream"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	maxPage    = 1000
	maxStreams = 1000 // open SSE streams per instance, each a consumer on the cluster
)

// mount adds the fleet's routes to the web server (ui.Config.Fleet).
func (h *HQ) mount(api *echo.Group, read echo.MiddlewareFunc, e *echo.Echo, stream echo.MiddlewareFunc) {
	api.GET("/fleet", h.snapshot, read)
	api.GET("/fleet/events", h.events, read)
	e.GET("/api/v1/fleet/stream", h.stream, stream, read)
}

// depotParam is ?depot=, checked: it becomes part of a NATS subject.
func depotParam(c echo.Context) (string, error) {
	d := c.QueryParam("depot")
	if d != "" && !bridge.ValidID(d) {
		return "", echo.NewHTTPError(http.StatusBadRequest, "depot: 1-64 letters, digits, '-', '_' or '.'")
	}
	return d, nil
}

func subjectFor(depot string) string {
	if depot == "" {
		return allEvents
	}
	return upstream.EventsSubject(depot)
}

func (h *HQ) snapshot(c echo.Context) error {
	only, err := depotParam(c)
	if err != nil {
		return err
	}
	seq, ready, depots := h.fleet.Snapshot(only)
	if !ready {
		c.Response().Header().Set("Retry-After", "1")
		return echo.NewHTTPError(http.StatusServiceUnavailable, h.ready().Error())
	}
	return c.JSON(http.StatusOK, map[string]any{"seq": seq, "serverTime": time.Now().UnixMilli(),
		"instance": h.cfg.Instance, "depots": depots})
}

// after reads where a client is: Last-Event-ID (an EventSource that
// reconnects), else ?after=.
func after(c echo.Context) (uint64, error) {
	for _, v := range []string{c.Request().Header.Get("Last-Event-ID"), c.QueryParam("after")} {
		if v == "" {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, echo.NewHTTPError(http.StatusBadRequest, "Last-Event-ID / after: want a stream sequence")
		}
		return n, nil
	}
	return 0, nil
}

// reader opens an ordered consumer on the events after seq. gone says the
// stream no longer holds the one after seq (the client must reload).
func (h *HQ) reader(ctx context.Context, depot string, seq uint64) (c jetstream.Consumer, gone uint64, err error) {
	s, err := h.js.Stream(ctx, upstream.StreamName)
	if err != nil {
		return nil, 0, err
	}
	st := s.CachedInfo().State
	if seq > 0 && (seq+1 < st.FirstSeq || seq > st.LastSeq) {
		// Aged out, or past the end: a stream deleted and made again
		// numbers from 1, and a browser would wait at its old place for good.
		return nil, max(st.FirstSeq, 1), nil
	}
	// The server drops a request's consumer 10 s after its reader is gone,
	// not after the default 5 minutes: a poll every 2 s would leave dozens.
	c, err = s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjectFor(depot)},
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq + 1, InactiveThreshold: 10 * time.Second})
	return c, 0, err
}

// line is one event as the browser gets it.
func line(m jetstream.Msg) (id uint64, data []byte, ok bool) {
	md, err := m.Metadata()
	if err != nil || !validEvent(m.Data()) {
		return 0, nil, false
	}
	depot, _, _, ok := depotOf(m.Subject())
	if !ok {
		return 0, nil, false
	}
	data = make([]byte, 0, len(m.Data())+len(depot)+64)
	data = append(data, `{"depot":`...)
	data = strconv.AppendQuote(data, depot)
	data = append(data, `,"at":"`...)
	data = md.Timestamp.UTC().AppendFormat(data, time.RFC3339Nano)
	data = append(data, `","event":`...)
	data = append(data, m.Data()...)
	data = append(data, '}')
	return md.Sequence.Stream, data, true
}

// stream is GET /api/v1/fleet/stream: SSE, id = stream sequence.
func (h *HQ) stream(c echo.Context) error {
	depot, err := depotParam(c)
	if err != nil {
		return err
	}
	from, err := after(c)
	if err != nil {
		return err
	}
	if from == 0 {
		from = h.fleet.Seq() // from now: a browser loads GET /fleet first (never a replay of the whole stream)
	}
	if n := h.streams.Add(1); n > maxStreams {
		h.streams.Add(-1)
		c.Response().Header().Set("Retry-After", "5")
		return echo.NewHTTPError(http.StatusServiceUnavailable, "too many open streams on this instance; try another or poll")
	}
	defer h.streams.Add(-1)
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	stopOnClose := context.AfterFunc(h.ctx, cancel) // Close ends streams; browsers go to another instance
	defer stopOnClose()
	token := strings.TrimPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
	claims, err := h.accounts.Verify(token)
	if err != nil {
		return echo.NewHTTPError(http.StatusUnauthorized, "login token refused")
	}
	cons, gone, err := h.reader(ctx, depot, from)
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the fleet stream cannot be read now: "+clip(err))
	}
	w := c.Response()
	hd := w.Header()
	hd.Set(echo.HeaderContentType, "text/event-stream")
	hd.Set(echo.HeaderCacheControl, "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	// Each write gets its own deadline: a browser that stops reading
	// frees its handler and consumer instead of pinning them.
	deadline := func() { _ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second)) }
	deadline()
	w.WriteHeader(http.StatusOK)
	if gone > 0 {
		fmt.Fprintf(w, "event: reset\ndata: {\"firstSeq\":%d}\n\n", gone)
		w.Flush()
		return nil
	}
	it, err := cons.Messages()
	if err != nil {
		return nil
	}
	defer it.Stop()
	msgs := make(chan jetstream.Msg, 256)
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if err != nil {
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	w.Flush()
	ka := time.NewTicker(h.cfg.KeepAlive)
	defer ka.Stop()
	// The stream ends within a second when its user is deleted, re-roled,
	// disabled or given a new password on any instance (the users are
	// shared and watched), as the depot's own stream does.
	recheck := time.NewTicker(time.Second)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-recheck.C:
			if !h.accounts.StillValid(claims) {
				return nil
			}
		case <-ka.C:
			// A token expired since the stream opened: it ends (the
			// browser's reconnect is refused).
			if _, err := h.accounts.Verify(token); err != nil {
				return nil
			}
			deadline()
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
		case m, ok := <-msgs:
			if !ok {
				return nil // the reader ended: the browser reconnects with Last-Event-ID
			}
			if id, data, ok := line(m); ok {
				deadline()
				if _, err := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", id, data); err != nil {
					return nil
				}
			}
			if len(msgs) > 0 {
				continue // flush once a burst is written
			}
		}
		w.Flush()
	}
}

// events is GET /api/v1/fleet/events: the polling fallback.
func (h *HQ) events(c echo.Context) error {
	depot, err := depotParam(c)
	if err != nil {
		return err
	}
	from, err := after(c)
	if err != nil {
		return err
	}
	limit := 500
	if v := c.QueryParam("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxPage {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("limit: 1 to %d", maxPage))
		}
	}
	cons, gone, err := h.reader(c.Request().Context(), depot, from)
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the fleet stream cannot be read now: "+clip(err))
	}
	type item struct {
		ID    uint64          `json:"id"`
		Depot string          `json:"depot"`
		At    time.Time       `json:"at"` // when the stream took it: when the depot was last heard
		Event json.RawMessage `json:"event"`
	}
	out := struct {
		Events []item `json:"events"`
		Last   uint64 `json:"last"`
		Reset  bool   `json:"reset"`
	}{Events: []item{}, Last: from}
	if gone > 0 {
		out.Reset = true
		return c.JSON(http.StatusOK, out)
	}
	batch, err := cons.FetchNoWait(limit)
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the fleet stream cannot be read now: "+clip(err))
	}
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		out.Last = md.Sequence.Stream
		if d, _, _, ok := depotOf(m.Subject()); ok && validEvent(m.Data()) {
			out.Events = append(out.Events, item{ID: md.Sequence.Stream, Depot: d, At: md.Timestamp.UTC(), Event: m.Data()})
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the fleet stream cannot be read now: "+clip(err))
	}
	return c.JSON(http.StatusOK, out)
}
