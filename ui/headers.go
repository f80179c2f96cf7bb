package ui

import (
	"log/slog"
	"strings"

	"github.com/labstack/echo/v4"
)

// securityHeaders sets the browser-side rules on every answer. The
// Content-Security-Policy lets the dashboard run only its own script and
// styles, so markup that reaches the page from the network cannot run even
// if a rendering bug inserts it; the rest keeps the page out of frames, its
// URLs out of Referer headers and API answers out of caches.
//
// connect-src names ws:// and wss:// of the host the browser asked for:
// not every browser counts a WebSocket to the same host as 'self'.
// The dashboard starts no worker (its MQTT client keeps a background tab's
// session alive by pinging as frames arrive), so worker-src is 'none'.
//
// The driver app under /driver/ is the one page that runs a service worker
// (its app shell, for dead zones) and has a web app manifest, and the one
// that may ask for the browser's position; everything else may not.
func securityHeaders(mapTiles string, log *slog.Logger) echo.MiddlewareFunc {
	img := "img-src 'self' data:"
	if o, ok := tileOrigin(mapTiles); ok {
		if o != "" {
			img += " " + o
		}
	} else {
		log.Warn("map tiles: cannot tell the tile server's origin from the template; tiles will be refused by the page's Content-Security-Policy", "template", clipForLog(mapTiles, 200))
	}
	rest := "; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; connect-src 'self'"
	head := "default-src 'self'; script-src 'self'; style-src 'self'; " + img + "; worker-src 'none'" + rest
	driverHead := "default-src 'self'; script-src 'self'; style-src 'self'; " + img + "; worker-src 'self'; manifest-src 'self'" + rest
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			p := c.Request().URL.Path
			csp, geo := head, "geolocation=()"
			if strings.HasPrefix(p, "/driver/") {
				csp, geo = driverHead, "geolocation=(self)"
			}
			if host := c.Request().Host; validHost(host) {
				csp += " ws://" + host + " wss://" + host
			}
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Permissions-Policy", geo)
			if strings.HasPrefix(p, "/api/") || p == "/healthz" || p == "/readyz" {
				h.Set("Cache-Control", "no-store")
			}
			return next(c)
		}
	}
}

// validHost is a Host header that can go into a policy as it is: a name or
// address and a port, nothing that could end a directive or add a source.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == ':', r == '[', r == ']':
		default:
			return false
		}
	}
	return true
}

// tileOrigin is the CSP source of a Leaflet tile URL template:
// "https://{s}.tile.example.org/{z}/{x}/{y}.png" gives
// "https://*.tile.example.org". "" with ok for no template or one on this
// host; !ok for a template whose origin cannot be told.
func tileOrigin(tmpl string) (origin string, ok bool) {
	if tmpl == "" || strings.HasPrefix(tmpl, "/") && !strings.HasPrefix(tmpl, "//") {
		return "", true
	}
	scheme, rest, found := strings.Cut(tmpl, "://")
	if !found || (scheme != "http" && scheme != "https") {
		return "", false
	}
	host, _, _ := strings.Cut(rest, "/")
	if i := strings.IndexAny(host, "?#@"); i >= 0 || host == "" {
		return "", false
	}
	// A placeholder may stand for the leftmost label only ({s} for the
	// subdomains a-b-c): CSP has a wildcard for that and for nothing else.
	if first, after, ok := strings.Cut(host, "."); ok && strings.HasPrefix(first, "{") && strings.HasSuffix(first, "}") {
		host = "*." + after
	}
	if strings.ContainsAny(strings.TrimPrefix(host, "*."), "{}*") || !validHost(strings.TrimPrefix(host, "*.")) {
		return "", false
	}
	return scheme + "://" + host, true
}

// clipForLog shortens s for a log line.
func clipForLog(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
