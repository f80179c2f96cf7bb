package ui

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestTileOrigin(t *testing.T) {
	for tmpl, want := range map[string]struct {
		origin string
		ok     bool
	}{
		"":                       {"", true},
		"/tiles/{z}/{x}/{y}.png": {"", true},
		"https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png": {"https://*.tile.openstreetmap.org", true},
		"http://tiles.local:8081/{z}/{x}/{y}.png":            {"http://tiles.local:8081", true},
		"https://tile.example.org":                           {"https://tile.example.org", true},
		"https://a.{s}.example.org/{z}/{x}/{y}.png":          {"", false},
		"https://tiles.example.org;script-src *":             {"", false},
		"javascript:alert(1)":                                {"", false},
		"ftp://x.example/{z}":                                {"", false},
		"https://user@x.example/{z}":                         {"", false},
		"//x.example/{z}":                                    {"", false},
	} {
		o, ok := tileOrigin(tmpl)
		if o != want.origin || ok != want.ok {
			t.Errorf("tileOrigin(%q) = %q, %v; want %q, %v", tmpl, o, ok, want.origin, want.ok)
		}
	}
}

func TestValidHost(t *testing.T) {
	for h, want := range map[string]bool{"127.0.0.1:8080": true, "depot.local": true, "[::1]:80": true,
		"": false, "a b": false, "x;script-src": false, "x,y": false, "x'": false} {
		if validHost(h) != want {
			t.Errorf("validHost(%q) = %v", h, !want)
		}
	}
}

// TestDriverAppHeaders: the driver app under /driver/ may run its service
// worker, read its manifest and ask for the position; the dashboard and the
// API may do none of that.
func TestDriverAppHeaders(t *testing.T) {
	e := echo.New()
	e.Use(securityHeaders("", slog.New(slog.DiscardHandler)))
	e.GET("/*", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	for _, tc := range []struct {
		path        string
		driver      bool
		worker, geo string
		manifestSrc bool
	}{
		{"/driver/", true, "worker-src 'self'", "geolocation=(self)", true},
		{"/driver/sw.js", true, "worker-src 'self'", "geolocation=(self)", true},
		{"/driver/manifest.webmanifest", true, "worker-src 'self'", "geolocation=(self)", true},
		{"/", false, "worker-src 'none'", "geolocation=()", false},
		{"/app.js", false, "worker-src 'none'", "geolocation=()", false},
		{"/driver", false, "worker-src 'none'", "geolocation=()", false}, // only redirects
		{"/driverx/", false, "worker-src 'none'", "geolocation=()", false},
		{"/api/v1/driver/state", false, "worker-src 'none'", "geolocation=()", false},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", tc.path, nil)
		req.Host = "depot.local:8080"
		e.ServeHTTP(rec, req)
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, tc.worker+";") {
			t.Errorf("%s: %q lacks %q", tc.path, csp, tc.worker)
		}
		if strings.Contains(csp, "manifest-src 'self'") != tc.manifestSrc {
			t.Errorf("%s: manifest-src in %q", tc.path, csp)
		}
		for _, want := range []string{"default-src 'self';", "script-src 'self';", "style-src 'self';", "object-src 'none';",
			"frame-ancestors 'none';", "connect-src 'self' ws://depot.local:8080 wss://depot.local:8080"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: %q lacks %q", tc.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("%s: %q", tc.path, csp)
		}
		if got := rec.Header().Get("Permissions-Policy"); got != tc.geo {
			t.Errorf("%s: Permissions-Policy %q, want %q", tc.path, got, tc.geo)
		}
	}
}
