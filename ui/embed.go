package ui

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// dist is the built dashboard (make ui). Only dist/.keep is committed: the
// bundle holds third-party code (MQTT.js, Leaflet) that the build fetches
// from the lock file, so it is built, never checked in.
//
//go:embed all:dist
var dist embed.FS

const notBuilt = `<!doctype html><title>Depot</title><body>
<h1>Dashboard not built</h1><p>This binary was built without the dashboard assets.
Run <code>make</code> (which runs <code>make ui</code>) and rebuild.</p>`

// The driver app's manifest: Go's own table of types does not know the
// extension, and an answer sniffed as text/plain under nosniff is one a
// browser may refuse.
func init() { _ = mime.AddExtensionType(".webmanifest", "application/manifest+json") }

func (s *Server) mountDashboard() {
	// The driver app is at /driver/: served at /driver, its relative URLs
	// (driver.js, sw.js) would resolve to the root. A redirect keeps the
	// pairing fragment (#driver=…&token=…), which a browser carries over to
	// a Location that has none.
	s.e.GET("/driver", func(c echo.Context) error {
		to := "/driver/"
		if q := c.Request().URL.RawQuery; q != "" {
			to += "?" + q
		}
		return c.Redirect(http.StatusMovedPermanently, to)
	})
	sub, _ := fs.Sub(dist, "dist")
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		s.e.GET("/", func(c echo.Context) error { return c.HTML(http.StatusOK, notBuilt) })
		return
	}
	index := "index.html"
	if s.cfg.Fleet != nil {
		index = "fleet.html" // depot hq: the fleet page is its front door
		if _, err := fs.Stat(sub, index); err != nil {
			s.e.GET("/", func(c echo.Context) error { return c.HTML(http.StatusOK, notBuilt) })
			return
		}
	}
	if s.cfg.Fleet == nil {
		// The admin page (docs/admin.md) at /admin as well as /admin.html;
		// its data is the API's, for admins only.
		s.e.GET("/admin", func(c echo.Context) error {
			b, err := fs.ReadFile(sub, "admin.html")
			if err != nil {
				return err
			}
			return c.HTMLBlob(http.StatusOK, b)
		})
	}
	s.e.Use(middleware.StaticWithConfig(middleware.StaticConfig{
		Filesystem: http.FS(sub),
		Index:      index,
		Skipper: func(c echo.Context) bool {
			p := c.Request().URL.Path
			if s.cfg.Fleet != nil && strings.HasPrefix(p, "/admin.") {
				return true // the admin page is the depot's (its handhelds, its box)
			}
			return p == "/mqtt" || p == "/driver" || len(p) >= 4 && p[:4] == "/api" || p == "/healthz" || p == "/readyz" || p == "/metrics" || strings.HasPrefix(p, "/debug/")
		},
	}))
}
