package ui

import (
	"encoding/csv"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/labstack/echo/v4"
)

func (s *Server) routes(c echo.Context) error {
	return c.JSON(http.StatusOK, s.cfg.Depot.Routes())
}

func (s *Server) route(c echo.Context) error {
	r, ok := s.cfg.Depot.Route(c.Param("id"))
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, "no such route")
	}
	return c.JSON(http.StatusOK, r)
}

// parseTime takes RFC 3339 or Unix milliseconds.
func parseTime(v string, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if ms, perr := strconv.ParseInt(v, 10, 64); perr == nil {
		t, err = time.UnixMilli(ms), nil
	}
	// History starts in 1970 (keys are unsigned Unix ms) and JSON times end
	// in 9999: beyond either the answer could not be written.
	if err == nil && (t.Before(time.Unix(0, 0)) || t.Year() > 9999) {
		err = errors.New("out of range")
	}
	return t, err
}

// history serves a route's GPS track: ?from=&to= (RFC 3339 or Unix ms;
// default the last 24 hours) and format json (default), geojson, gpx or csv.
func (s *Server) history(c echo.Context) error {
	id := c.Param("id")
	if !bridge.ValidID(id) {
		return echo.NewHTTPError(http.StatusBadRequest, "invalid route id")
	}
	now := s.cfg.Now()
	to, err := parseTime(c.QueryParam("to"), now.Add(time.Minute))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "to: want RFC 3339 or Unix milliseconds")
	}
	from, err := parseTime(c.QueryParam("from"), to.Add(-24*time.Hour))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "from: want RFC 3339 or Unix milliseconds")
	}
	if to.Before(from) {
		return echo.NewHTTPError(http.StatusBadRequest, "to is before from")
	}
	format := c.QueryParam("format")
	switch format {
	case "", "json", "geojson", "gpx", "csv":
	default:
		return echo.NewHTTPError(http.StatusBadRequest, "format: want json, geojson, gpx or csv")
	}
	fixes, err := s.cfg.Archive.History(id, from, to)
	if err != nil {
		return err
	}
	switch format {
	case "geojson":
		return c.JSON(http.StatusOK, geoJSON(id, fixes))
	case "gpx":
		return writeGPX(c, id, fixes)
	case "csv":
		return writeCSV(c, fixes)
	}
	if fixes == nil {
		fixes = []bridge.Fix{} // a list, empty, not null
	}
	return c.JSON(http.StatusOK, map[string]any{"routeId": id, "from": from.UTC(), "to": to.UTC(), "fixes": fixes})
}

func geoJSON(id string, fixes []bridge.Fix) map[string]any {
	coords := make([][2]float64, len(fixes))
	times := make([]int64, len(fixes))
	for i, f := range fixes {
		coords[i] = [2]float64{f.Lng, f.Lat}
		times[i] = f.TS
	}
	return map[string]any{
		"type": "FeatureCollection",
		"features": []any{map[string]any{
			"type":       "Feature",
			"geometry":   map[string]any{"type": "LineString", "coordinates": coords},
			"properties": map[string]any{"routeId": id, "times": times},
		}},
	}
}

func writeGPX(c echo.Context, id string, fixes []bridge.Fix) error {
	type trkpt struct {
		Lat  float64 `xml:"lat,attr"`
		Lon  float64 `xml:"lon,attr"`
		Time string  `xml:"time"`
	}
	type gpx struct {
		XMLName xml.Name `xml:"gpx"`
		Version string   `xml:"version,attr"`
		Creator string   `xml:"creator,attr"`
		NS      string   `xml:"xmlns,attr"`
		Name    string   `xml:"trk>name"`
		Points  []trkpt  `xml:"trk>trkseg>trkpt"`
	}
	g := gpx{Version: "1.1", Creator: "depot", NS: "http://www.topografix.com/GPX/1/1", Name: id}
	for _, f := range fixes {
		g.Points = append(g.Points, trkpt{Lat: f.Lat, Lon: f.Lng, Time: f.Time().Format(time.RFC3339Nano)})
	}
	c.Response().Header().Set(echo.HeaderContentType, "application/gpx+xml")
	c.Response().WriteHeader(http.StatusOK)
	if _, err := c.Response().Write([]byte(xml.Header)); err != nil {
		return err
	}
	return xml.NewEncoder(c.Response()).Encode(g)
}

func writeCSV(c echo.Context, fixes []bridge.Fix) error {
	c.Response().Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write([]string{"ts", "time", "driverId", "lat", "lng", "acc", "spd", "hdg", "batt"})
	f64 := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, f := range fixes {
		_ = w.Write([]string{fmt.Sprint(f.TS), f.Time().Format(time.RFC3339Nano), f.DriverID,
			f64(f.Lat), f64(f.Lng), f64(f.Acc), f64(f.Spd), f64(f.Hdg), f64(f.Batt)})
	}
	w.Flush()
	return w.Error()
}
