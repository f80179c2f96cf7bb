package ui

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s := New(cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.e.Close() })
	return s
}

// TestSlowBodyIsCut: a client trickling a request body (a byte every
// 200 ms) to the unauthenticated webhook is cut off after the read timeout
// instead of holding its connection for ever.
func TestSlowBodyIsCut(t *testing.T) {
	s := startServer(t, Config{PayrollSecret: strings.Repeat("s", 16), ReadTimeout: 500 * time.Millisecond})
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /api/v1/webhooks/payroll HTTP/1.1\r\nHost: depot\r\nContent-Length: 10000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	// Generous: only a server that never cuts the body reaches it.
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("trickling body still held after 20 s")
	}
}

// get sends one GET on a raw keep-alive connection and returns the status
// (0 when the connection was closed instead).
func get(conn net.Conn, path string) int {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: depot\r\n\r\n"); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestConnsPerIPCapped: one address may hold MaxConnsPerIP connections;
// the extra ones are closed at once, and once some close a normal request
// gets through again.
func TestConnsPerIPCapped(t *testing.T) {
	s := startServer(t, Config{MaxConnsPerIP: 3})
	var held []net.Conn
	for i := range 3 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if code := get(c, "/healthz"); code != 200 {
			t.Fatalf("connection %d: HTTP %d", i, code)
		}
		held = append(held, c)
	}
	extra, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if code := get(extra, "/healthz"); code != 0 {
		t.Fatalf("connection over the per-address cap answered HTTP %d", code)
	}
	held[0].Close()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := hc.Get("http://" + s.Addr() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request got through after a held connection closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConnsTotalCapped: the listener refuses connections over the total
// cap whatever their address.
func TestConnsTotalCapped(t *testing.T) {
	s := startServer(t, Config{MaxConns: 2, MaxConnsPerIP: 100})
	for i := range 2 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if code := get(c, "/healthz"); code != 200 {
			t.Fatalf("connection %d: HTTP %d", i, code)
		}
	}
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code := get(c, "/healthz"); code != 0 {
		t.Fatalf("connection over the total cap answered HTTP %d", code)
	}
}

// FuzzTrustedProxies: whatever the flag and the header say, the client
// address is the peer's unless the peer is a trusted proxy, and then it is
// one of the addresses the header names or the peer's.
func FuzzTrustedProxies(f *testing.F) {
	f.Add("127.0.0.1/32", "203.0.113.9", "127.0.0.1")
	f.Add("10.0.0.0/8,192.168.1.1", "203.0.113.9, 10.1.2.3", "10.0.0.5")
	f.Add("", "1.2.3.4", "127.0.0.1")
	f.Add("::1/128", "2001:db8::1", "::1")
	f.Add("0.0.0.0/0", "garbage, ,1.1.1.1", "8.8.8.8")
	f.Add("10.0.0.0/33", "", "10.0.0.1")
	f.Fuzz(func(t *testing.T, flag, xff, peer string) {
		nets, err := ParseTrustedProxies(flag)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		pip := net.ParseIP(peer)
		if pip == nil {
			return
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = net.JoinHostPort(peer, "4242")
		req.Header.Set(echo.HeaderXForwardedFor, xff)
		got := ipExtractor(nets)(req)
		trusted := false
		for _, n := range nets {
			trusted = trusted || n.Contains(pip)
		}
		same := func(a, b string) bool {
			x, y := net.ParseIP(strings.TrimSpace(a)), net.ParseIP(strings.TrimSpace(b))
			return a == b || x != nil && x.Equal(y)
		}
		if !trusted {
			if !same(got, peer) {
				t.Fatalf("untrusted peer %s with X-Forwarded-For %q: client %q", peer, xff, got)
			}
			return
		}
		if same(got, peer) {
			return
		}
		for _, h := range strings.Split(xff, ",") {
			if same(h, got) {
				return
			}
		}
		t.Fatalf("client %q is neither the peer %s nor in %q", got, peer, xff)
	})
}

// TestAddrKey: per-address limits count an IPv4 address, or an IPv6 /64
// (a v4-mapped address counts as the IPv4 one).
func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":          "203.0.113.7",
		"::ffff:203.0.113.7":   "203.0.113.7",
		"2001:db8:1:2::1":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"fe80::1%eth0":         "fe80::/64",
		"::1":                  "::/64",
		"not an address":       "not an address",
		"":                     "",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}
