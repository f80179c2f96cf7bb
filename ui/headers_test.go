package ui

import "testing"

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
