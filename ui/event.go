package ui

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/depotcc/depot/bridge"
	"github.com/labstack/echo/v4"
)

// maxEventPage bounds one GET /events answer.
const maxEventPage = 1000

// events serves the event log after ?after=SEQ (default 0), at most ?limit=N
// (default and maximum 1000), as a JSON array of envelopes in seq order;
// 410 when events right after SEQ were pruned by the retention.
func (s *Server) events(c echo.Context) error {
	after, limit := uint64(0), maxEventPage
	if v := c.QueryParam("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "after: want a seq number")
		}
		after = n
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return echo.NewHTTPError(http.StatusBadRequest, "limit: want a positive number")
		}
		limit = min(n, maxEventPage)
	}
	// A client that asks for events the retention already pruned must not
	// get a silent gap: it is told to start again from /state.
	oldest, err := s.cfg.Archive.OldestSeq()
	if err != nil {
		return err
	}
	if after > 0 && oldest > after+1 {
		return c.JSON(http.StatusGone, map[string]any{
			"error": "events up to seq " + strconv.FormatUint(oldest-1, 10) + " were pruned; reload GET /api/v1/state", "oldestSeq": oldest})
	}
	if v := c.QueryParam("types"); v != "" {
		types, err := parseTypes(v)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		return s.typedEvents(c, after, limit, types)
	}
	evs, err := s.cfg.Archive.EventsAfter(after, limit)
	if err != nil {
		return err
	}
	c.Response().Header().Set("X-Last-Seq", strconv.FormatUint(s.cfg.Depot.LastSeq(), 10))
	if evs == nil {
		return c.JSONBlob(http.StatusOK, []byte("[]"))
	}
	return c.JSON(http.StatusOK, evs)
}

// maxTypedScan bounds the events one typed request reads through: a day of
// a busy depot is about a million, nearly all route updates.
const maxTypedScan = 100_000

// parseTypes reads ?types=a:b,c:d: at most 20 event type names.
func parseTypes(v string) (map[string]bool, error) {
	parts := strings.Split(v, ",")
	if len(parts) > 20 {
		return nil, errBadTypes
	}
	out := make(map[string]bool, len(parts))
	for _, t := range parts {
		if len(t) == 0 || len(t) > 40 || strings.Trim(t, "abcdefghijklmnopqrstuvwxyz:") != "" {
			return nil, errBadTypes
		}
		out[t] = true
	}
	return out, nil
}

var errBadTypes = echo.NewHTTPError(http.StatusBadRequest, "types: want up to 20 event types, comma-separated (e.g. rescue:alert,vto:offer)")

// typedEvents answers ?types=: the events of those types after seq after,
// at most limit, read through at most maxTypedScan events of the log, as
// {"events": [...], "scannedTo": seq}: the next request goes on after
// scannedTo (the last event read through, whether it matched or not), so
// the page of a rare type over a long log takes a few requests, never one
// without bound.
func (s *Server) typedEvents(c echo.Context, after uint64, limit int, types map[string]bool) error {
	out := []json.RawMessage{}
	cur, err := s.scanLog(after, 0, maxTypedScan, func(h bridge.EventHead, raw json.RawMessage) bool {
		if types[h.Type] {
			out = append(out, raw)
		}
		return len(out) < limit
	})
	if err != nil {
		return err
	}
	c.Response().Header().Set("X-Last-Seq", strconv.FormatUint(s.cfg.Depot.LastSeq(), 10))
	return c.JSON(http.StatusOK, map[string]any{"events": out, "scannedTo": cur})
}

// scanLog reads the event log after seq after, up to seq upTo (0: to its
// end), through at most maxScan events, handing each to fn until fn says
// stop. It returns the last seq read through (whether fn kept it or not:
// a next read goes on after it). Only an event's head (seq, type, time)
// is decoded here.
func (s *Server) scanLog(after, upTo uint64, maxScan int, fn func(h bridge.EventHead, raw json.RawMessage) bool) (uint64, error) {
	cur, scanned := after, 0
	for scanned < maxScan && (upTo == 0 || cur < upTo) {
		before := cur
		n := maxEventPage
		if upTo != 0 && upTo-cur < uint64(n) {
			n = int(upTo - cur)
		}
		evs, err := s.cfg.Archive.EventsAfter(cur, n)
		if err != nil {
			return cur, err
		}
		for _, raw := range evs {
			h, ok := bridge.ReadEventHead(raw)
			if !ok || h.Seq <= cur || (upTo != 0 && h.Seq > upTo) {
				continue
			}
			cur = h.Seq
			scanned++
			if !fn(h, raw) {
				return cur, nil
			}
			if scanned >= maxScan {
				return cur, nil
			}
		}
		if len(evs) < n || cur == before {
			break // the end of the log, or a page that would be read again
		}
	}
	return cur, nil
}
