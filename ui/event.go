package ui

import (
	"net/http"
	"strconv"

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
