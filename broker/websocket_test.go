package broker

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCheckOrigin(t *testing.T) {
	l := newWSListener("ws", []string{"https://wall.depot.example"}, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for origin, want := range map[string]bool{
		"":                                true, // not a browser
		"http://depot.local:8080":         true, // the page's own origin
		"HTTP://DEPOT.LOCAL:8080":         true,
		"https://wall.depot.example":      true,
		"https://wall.depot.example/":     false, // an origin has no path
		"http://evil.example":             false,
		"http://depot.local:8081":         false,
		"null":                            false,
		"https://wall.depot.example.evil": false,
	} {
		r := httptest.NewRequest("GET", "http://depot.local:8080/mqtt", nil)
		r.Host = "depot.local:8080"
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if got := l.checkOrigin(r); got != want {
			t.Errorf("origin %q: %v, want %v", origin, got, want)
		}
	}
}

func TestRefusedError(t *testing.T) {
	err := error(&Refused{Code: CodePayloadFormat, Reason: "lat 200"})
	if err.Error() != "refused (0x99): lat 200" {
		t.Fatal(err)
	}
}
