package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener is a mochi listener that owns no port: the web server mounts it
// as an http.Handler at /mqtt, so the dashboard, API and MQTT share one
// origin. mochi's own WebSocket listener insists on its own http.Server and
// accepts any origin (docs/libraries.md §1).
type wsListener struct {
	id       string
	log      *slog.Logger
	timeout  time.Duration
	origins  []string
	upgrader websocket.Upgrader

	mu     sync.RWMutex
	est    listeners.EstablishFn
	closed bool
}

var _ listeners.Listener = (*wsListener)(nil)

func newWSListener(id string, origins []string, timeout time.Duration, log *slog.Logger) *wsListener {
	l := &wsListener{id: id, log: log, timeout: timeout, origins: origins}
	l.upgrader = websocket.Upgrader{
		Subprotocols:    []string{"mqtt"},
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     l.checkOrigin,
	}
	return l
}

// checkOrigin accepts clients without an Origin header (not a browser), the
// page's own origin, and the configured allow-list. Anything else is a page
// on another site trying to use a dispatcher's browser.
func (l *wsListener) checkOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err == nil && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return slices.ContainsFunc(l.origins, func(a string) bool { return strings.EqualFold(strings.TrimRight(a, "/"), o) })
}

func (l *wsListener) ID() string                  { return l.id }
func (l *wsListener) Address() string             { return "/mqtt" }
func (l *wsListener) Protocol() string            { return "ws" }
func (l *wsListener) Init(log *slog.Logger) error { return nil }

func (l *wsListener) Serve(est listeners.EstablishFn) {
	l.mu.Lock()
	l.est = est
	l.mu.Unlock()
}

func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	closeClients(l.id)
}

// ServeHTTP upgrades the request and runs the MQTT session on it; it returns
// when the client disconnects.
func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.RLock()
	est, closed := l.est, l.closed
	l.mu.RUnlock()
	if est == nil || closed {
		http.Error(w, `{"error":"mqtt broker not running"}`, http.StatusServiceUnavailable)
		return
	}
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer c.Close()
	conn := c.UnderlyingConn()
	_ = conn.SetDeadline(time.Now().Add(l.timeout))
	if err := est(l.id, &wsConn{Conn: conn, c: c}); err != nil && !errors.Is(err, io.EOF) {
		l.log.Debug("websocket client ended", "remote", r.RemoteAddr, "err", err)
	}
}

// wsConn presents a WebSocket as the byte stream mochi reads packets from.
// Adapted from mochi's listeners/websocket.go (MIT).
type wsConn struct {
	net.Conn
	c  *websocket.Conn
	r  io.Reader  // the current message, if any
	mu sync.Mutex // gorilla panics on concurrent writes, and a panic here would end the process
}

var errNotBinary = errors.New("websocket message is not binary")

func (ws *wsConn) Read(p []byte) (int, error) {
	if ws.r == nil {
		op, r, err := ws.c.NextReader()
		if err != nil {
			return 0, err
		}
		if op != websocket.BinaryMessage {
			return 0, errNotBinary
		}
		ws.r = r
	}
	n := 0
	for n < len(p) {
		k, err := ws.r.Read(p[n:])
		n += k
		if err != nil {
			ws.r = nil // the end of this message, or a broken one
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return n, err
		}
	}
	return n, nil
}

func (ws *wsConn) Write(p []byte) (int, error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (ws *wsConn) Close() error { return ws.Conn.Close() }
