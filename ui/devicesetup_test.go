package ui

import (
	"crypto/tls"
	"net"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/depotcc/depot/ui/setup"
)

func TestSetupHeldTokens(t *testing.T) {
	var h heldTokens
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	h.put("D1", "tok1", t0)
	if tok, ok := h.get("D1", t0.Add(SetupHold-time.Second)); !ok || tok != "tok1" {
		t.Fatalf("held: %q %v", tok, ok)
	}
	if _, ok := h.get("D1", t0.Add(SetupHold)); ok {
		t.Fatal("held past SetupHold")
	}
	if h.len() != 0 {
		t.Fatal("an expired token stays in memory")
	}
	h.put("D1", "tok1", t0)
	h.put("D1", "tok2", t0.Add(time.Minute)) // provisioned again
	if tok, _ := h.get("D1", t0.Add(2*time.Minute)); tok != "tok2" {
		t.Fatalf("replaced token: %q", tok)
	}
	h.drop("D1")
	if _, ok := h.get("D1", t0.Add(2*time.Minute)); ok {
		t.Fatal("dropped token still held")
	}
	if _, ok := h.get("D1", t0); ok {
		t.Fatal("dropped token still held")
	}
	// A clock set far back does not stretch the hold.
	h.put("D2", "tok", t0)
	if _, ok := h.get("D2", t0.Add(-time.Hour)); ok {
		t.Fatal("held under a clock set back")
	}

	// Bounded: the oldest goes first.
	var b heldTokens
	for i := 0; i < setupHeldMax+10; i++ {
		b.put("D"+strconv.Itoa(i), "t", t0.Add(time.Duration(i)*time.Millisecond))
	}
	if b.len() != setupHeldMax {
		t.Fatalf("%d tokens held, cap %d", b.len(), setupHeldMax)
	}
	now := t0.Add(time.Second)
	if _, ok := b.get("D9", now); ok {
		t.Fatal("an oldest token was kept over the cap")
	}
	if _, ok := b.get("D10", now); !ok {
		t.Fatal("a token within the cap was dropped")
	}
	if _, ok := b.get("D"+strconv.Itoa(setupHeldMax+9), now); !ok {
		t.Fatal("the newest token was dropped")
	}
	// Full of expired tokens: they go, not the new one.
	b.put("new", "t", t0.Add(SetupHold+time.Hour))
	if b.len() != 1 {
		t.Fatalf("expired tokens kept when full: %d", b.len())
	}
}

func TestSetupPublicBase(t *testing.T) {
	_, proxy, _ := net.ParseCIDR("10.9.0.0/16")
	s := &Server{cfg: Config{TrustedProxies: []*net.IPNet{proxy}}}
	for _, c := range []struct {
		host, remote, proto string
		tls                 bool
		want                string
	}{
		{"depot.example:8080", "192.0.2.1:5000", "", false, "http://depot.example:8080"},
		{"depot.example", "192.0.2.1:5000", "", true, "https://depot.example"},
		{"[fd00::5]:8080", "192.0.2.1:5000", "", false, "http://[fd00::5]:8080"},
		{"depot.example", "10.9.1.1:5000", "https", false, "https://depot.example"}, // a trusted proxy's word
		{"depot.example", "192.0.2.1:5000", "https", false, "http://depot.example"}, // anyone else's is not taken
		{"depot.example", "10.9.1.1:5000", "gopher", false, "http://depot.example"}, // only https counts
		{"depot_x:8080", "192.0.2.1:5000", "", false, ""},                           // not a name for a link
		{"depot.example:8080/x", "192.0.2.1:5000", "", false, ""},                   // nor a path
		{"[fd00::5:8080", "192.0.2.1:5000", "", false, ""},                          // nor an unclosed bracket
		{"", "192.0.2.1:5000", "", false, ""},
	} {
		r := httptest.NewRequest("GET", "/api/v1/devices", nil)
		r.Host, r.RemoteAddr = c.host, c.remote
		if c.proto != "" {
			r.Header.Set("X-Forwarded-Proto", c.proto)
		}
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		got := ""
		if u := s.publicBase(r); u != nil {
			got = u.String()
		}
		if got != c.want {
			t.Errorf("Host %q from %s (proto %q, tls %v): %q, want %q", c.host, c.remote, c.proto, c.tls, got, c.want)
		}
	}
	pub, _ := setup.ParseBase("https://depot.example:8443")
	s.cfg.PublicURL = pub
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "depot_x"
	if u := s.publicBase(r); u == nil || u.String() != "https://depot.example:8443" {
		t.Fatalf("with a public URL: %v", u)
	}
}
