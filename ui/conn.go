package ui

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// Defaults for Config's connection limits. Dashboards of one depot behind
// NAT share an address, so the per-address cap is generous; it stops one
// client from taking every file descriptor, which the total cap keeps
// below the process limit.
const (
	DefaultMaxConns      = 4096
	DefaultMaxConnsPerIP = 256
	DefaultReadTimeout   = 30 * time.Second
)

// limitListener closes, at once, connections over the total cap or over
// the cap of their peer address, so a flood of held-open connections
// cannot exhaust the process's file descriptors.
type limitListener struct {
	net.Listener
	max, perIP int

	mu    sync.Mutex
	total int
	byIP  map[string]int
}

func newLimitListener(ln net.Listener, max, perIP int) *limitListener {
	return &limitListener{Listener: ln, max: max, perIP: perIP, byIP: map[string]int{}}
}

func peerIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// addrKey is the unit a per-address limit counts: an IPv4 address, or the
// /64 of an IPv6 one. A single IPv6 host customarily holds a whole /64, so
// counting its addresses one by one would give it 2^64 budgets.
func addrKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// Accept returns the next connection within the caps; the ones over them
// are closed here and never reach the server.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrKey(peerIP(c.RemoteAddr()))
		l.mu.Lock()
		ok := l.total < l.max && l.byIP[ip] < l.perIP
		if ok {
			l.total++
			l.byIP[ip]++
		}
		l.mu.Unlock()
		if !ok {
			c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	l.total--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
	l.mu.Unlock()
}

// countedConn gives its slot back on its first Close (also when the
// WebSocket side closes a hijacked connection).
type countedConn struct {
	net.Conn
	l    *limitListener
	ip   string
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}

// bodyDeadline bounds the time a request may take to send its body. It is
// set per request rather than as the server's ReadTimeout, which would also
// cut the long-lived /mqtt WebSocket (a hijacked connection keeps the
// deadline) and the SSE stream: those are GETs without a body and are left
// alone. The deadline is cleared when the body has been read to its end,
// because net/http then reads the connection in the background to notice a
// client going away, and a timeout there would cancel a slow handler.
func (s *Server) bodyDeadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			return next(c)
		}
		rc := http.NewResponseController(c.Response())
		if err := rc.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout)); err != nil {
			return next(c) // not a plain connection (tests' recorders)
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		return next(c)
	}
}

type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	cleared bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.cleared {
		b.cleared = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// ParseTrustedProxies reads a --trusted-proxies list: comma-separated CIDR
// ranges or single addresses.
func ParseTrustedProxies(s string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			ip := net.ParseIP(p)
			if ip == nil {
				return nil, fmt.Errorf("trusted proxy %.64q: not an IP address or CIDR range", p)
			}
			bits := 128
			if ip4 := ip.To4(); ip4 != nil {
				ip, bits = ip4, 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %.64q: not a CIDR range like 10.0.0.0/8", p)
		}
		out = append(out, n)
	}
	return out, nil
}

// ipExtractor says whose address a request is: the peer's, unless the peer
// is one of the trusted proxies, whose X-Forwarded-For is then believed (up
// to the first address that is not itself a trusted proxy). Echo's own
// default trust of loopback and private ranges is off: a client on the
// depot's LAN must not name itself.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
