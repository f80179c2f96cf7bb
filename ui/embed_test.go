package ui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestDriverRedirect: /driver goes to /driver/ (with its query), where the
// app's relative URLs resolve; when the app is built, /driver/ serves it
// and its manifest has a manifest's type.
func TestDriverRedirect(t *testing.T) {
	h := New(Config{}).Handler()
	for path, want := range map[string]string{"/driver": "/driver/", "/driver?x=1": "/driver/?x=1"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != want {
			t.Errorf("GET %s: %d, Location %q; want 301 to %q", path, rec.Code, rec.Header().Get("Location"), want)
		}
	}
	if _, err := fs.Stat(dist, "dist/driver/index.html"); err != nil {
		t.Skip("the driver app is not built (make ui)")
	}
	for path, typ := range map[string]string{
		"/driver/":                     "text/html; charset=utf-8",
		"/driver/driver.js":            "text/javascript; charset=utf-8",
		"/driver/sw.js":                "text/javascript; charset=utf-8",
		"/driver/driver.css":           "text/css; charset=utf-8",
		"/driver/manifest.webmanifest": "application/manifest+json",
		"/driver/icon.svg":             "image/svg+xml",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != typ {
			t.Errorf("GET %s: %d, %q; want 200, %q", path, rec.Code, rec.Header().Get("Content-Type"), typ)
		}
	}
}
