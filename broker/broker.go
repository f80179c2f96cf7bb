// Package broker is the depot's embedded MQTT broker (mochi-mqtt v2): MQTT
// over TCP on its own port, MQTT over WebSocket as an http.Handler mounted
// by the web server, and the hooks that ask the rest of the appliance — via
// the small interfaces declared here — who may connect, what they may do, and
// what a published message means.
//
// The broker knows nothing of the domain: it hands publishes to an Ingestor
// and maps a Refused error to an MQTT 5 reason code.
package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Authenticator decides who may connect and what each client may do. It is
// asked on CONNECT, on SUBSCRIBE, on PUBLISH and on every delivery, so Allow
// and Publish must be cheap.
type Authenticator interface {
	// Authenticate checks a CONNECT and returns the session to record, or
	// an error to refuse it: one wrapping ErrNotAuthorized (anonymous, a
	// client id that is not the identity's) is answered with CONNACK 0x87
	// (3.1.1: 5), any other with 0x86 (3.1.1: 4).
	Authenticate(c Connect) (Session, error)
	// Allow reports whether identity may publish (write) to or receive from
	// topic.
	Allow(identity, topic string, write bool) bool
	// Publish judges a message beyond its topic: every PUBLISH after the
	// ACL, and a Last Will both at CONNECT and when it is sent (mochi sends
	// wills with no ACL check of its own). It says whether the message may
	// be kept as the topic's retained message; an error (best a *Refused,
	// for its reason code) refuses it, and a will refused at CONNECT
	// refuses the connection.
	Publish(identity string, m Message) (retain bool, err error)
}

// Session is an accepted CONNECT: who it is, and when its credential ends
// (zero: not before it is revoked). At Expires the session is ended with
// DISCONNECT 0xA0 (maximum connect time).
type Session struct {
	Identity string
	Expires  time.Time
}

// Message is a publish or a will, as the Authenticator sees it.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Will    bool
}

// Connect is what a client presents on CONNECT.
type Connect struct {
	ClientID string
	Username []byte
	Password []byte
	Listener string // "tcp" or "ws"
	Remote   string
	// Persistent: the client asks for a session that outlives the
	// connection (MQTT 5 session expiry > 0, 3.1.1 clean session off).
	Persistent bool
}

// Ingestor is told of every publish a client makes, before it is
// acknowledged. For a QoS 1 publish it should return only once the message
// is as safe as the PUBACK promises.
type Ingestor interface {
	Ingest(clientID, topic string, payload []byte, qos byte) error
}

// ErrNotAuthorized marks an Authenticate refusal that is about permission,
// not about the credential.
var ErrNotAuthorized = errors.New("not authorized")

// ErrClientID marks an Authenticate refusal of the client id itself (say a
// persistent session under an id other than the identity's own): CONNACK
// 0x85 (3.1.1: 2, identifier rejected).
var ErrClientID = errors.New("client identifier not valid")

// Stats are the broker's refusal counters.
type Stats struct {
	ConnectRefused atomic.Int64
	PublishDenied  atomic.Int64
	ReadDenied     atomic.Int64 // subscriptions, and deliveries to a session whose rights ended
	PersistErrors  atomic.Int64 // broker session state that could not be written
	RateLimited    atomic.Int64 // publishes over a client's rate
}

// Observer is told when an authenticated session starts and ends (not for
// a session that another connection with the same client id took over).
type Observer interface {
	SessionStarted(identity string)
	SessionEnded(identity string)
}

// Refused is returned by an Ingestor for a publish it will not take. Code is
// the MQTT 5 reason code sent to v5 clients in the PUBACK.
type Refused struct {
	Code   byte
	Reason string
}

func (r *Refused) Error() string { return fmt.Sprintf("refused (0x%02x): %s", r.Code, r.Reason) }

// Reason codes used by Refused.
const (
	CodeUnspecified   = 0x80
	CodeRefused       = 0x83 // implementation specific: a valid message the domain turned down
	CodeNotAuthorized = 0x87
	CodeTopicInvalid  = 0x90
	CodeTooLarge      = 0x95
	CodePayloadFormat = 0x99
)

// Config sets up a Server. Zero values take the defaults noted.
type Config struct {
	TCPAddr        string        // MQTT over TCP; "" disables the TCP listener
	TLS            *tls.Config   // TLS on the TCP listener when set
	AllowedOrigins []string      // WebSocket origins besides the page's own
	Auth           Authenticator // required
	Ingest         Ingestor      // optional
	Observer       Observer      // optional: session start and end
	// Acked, when set, is told of every QoS 1 message a driver's session
	// acknowledged (its PUBACK): the push outbox's proof that the live
	// path delivered a message. Called on the client's read goroutine.
	Acked          func(identity, topic string, payload []byte)
	Sessions       SessionStore  // optional: persistent sessions survive restarts
	Log            *slog.Logger  // slog.Default()
	ConnectTimeout time.Duration // CONNECT must arrive within; 10s
	MaxPacketSize  uint32        // 64 KiB
	SessionExpiry  uint32        // cap on session expiry, seconds; 7 days
	MaxClients     int64         // 20,000
	WritesPending  int           // per-client outbound queue; 256
	PublishRate    float64       // per-identity publishes per second; 20
	PublishBurst   int           // per-identity burst; 60
	MaxKeepAlive   uint16        // seconds; a client asking for 0 or more gets this; 120
	MaxSubs        int           // subscriptions per client; 100
	TopicAliases   uint16        // MQTT 5 topic aliases a client may set; 16
	LogEvery       time.Duration // a repeated log line is summarised once per; 10s
	MaxInflight    uint16        // unacknowledged QoS 1 messages kept per client; 256

	// KeepRetained, when set, judges each retained message read back from
	// Sessions at start (clientID is its publisher's); false deletes it.
	// Messages stored before a stricter rule are so held to today's.
	KeepRetained func(clientID string, m Message) bool
	// KeepSession, when set, judges each persistent session read back from
	// Sessions at start by its client id and the identity it authenticated
	// as; false deletes it with its subscriptions and queued messages.
	KeepSession func(clientID, identity string) bool

	// WrapListener, when set, wraps the bound TCP listener (tests inject
	// accept errors with it).
	WrapListener func(net.Listener) net.Listener
}

// Server is the embedded broker.
type Server struct {
	Stats Stats

	expiry  sync.Map // *mqtt.Client -> *time.Timer: ends a session when its token does
	expires sync.Map // *mqtt.Client -> time.Time: its token's end, from CONNECT until the CONNACK is out
	pending sync.Map // client id -> *pendingSubs: the filters of a SUBSCRIBE being checked
	cfg     Config
	mq      *mqtt.Server
	ws      *wsListener
	ln      *acceptRetry
	tcp     *tcpListener
	once    sync.Once
	failed  atomic.Pointer[error] // the TCP listener stopped for good
	buckets buckets               // publish budgets by identity
	logs    *LogSummary

	retained retainedExpiry // in place of mochi's scan (retained.go)
	persist  *persistHook
	stop     chan struct{} // closed by Close: ends the retained sweep
}

// New builds a broker; Start binds it.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = 64 << 10
	}
	if cfg.SessionExpiry == 0 {
		cfg.SessionExpiry = 7 * 24 * 3600
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = 20000
	}
	if cfg.WritesPending == 0 {
		// Events of one commit go out as one message, so 256 messages are
		// seconds of a saturated depot for a dashboard that stalls.
		cfg.WritesPending = 256
	}
	if cfg.PublishRate == 0 {
		cfg.PublishRate = 20
	}
	if cfg.PublishBurst == 0 {
		cfg.PublishBurst = 60
	}
	if cfg.MaxKeepAlive == 0 {
		cfg.MaxKeepAlive = 120
	}
	if cfg.MaxSubs == 0 {
		cfg.MaxSubs = 100
	}
	if cfg.TopicAliases == 0 {
		cfg.TopicAliases = 16
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = 256
	}
	if cfg.LogEvery == 0 {
		cfg.LogEvery = 10 * time.Second
	}
	// Everything the broker and mochi log goes through the summary: most
	// of it is about clients, and any client, authenticated or not, can
	// make a line repeat as fast as it can send packets.
	logs := SummarizeLog(cfg.Log.Handler(), cfg.LogEvery)
	cfg.Log = slog.New(logs.Handler())
	return &Server{cfg: cfg, logs: logs}
}

// Start creates the broker and binds its listeners. It returns once they
// accept connections.
func (s *Server) Start() error {
	if s.cfg.Auth == nil {
		return errors.New("broker: no Authenticator configured")
	}
	// Start from mochi's defaults and set deliberately what matters here
	// (docs/libraries.md §1): a zero Capabilities would refuse every client.
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = s.cfg.MaxPacketSize
	caps.MaximumMessageExpiryInterval = 0 // mochi's 24h default would drop retained route states
	caps.MaximumSessionExpiryInterval = s.cfg.SessionExpiry
	caps.MaximumClientWritesPending = int32(s.cfg.WritesPending)
	caps.MaximumClients = s.cfg.MaxClients
	caps.MaximumQos = 1 // QoS 2 buys nothing for GPS or alerts and costs a round trip
	// mochi's default lets a client hold 65,535 aliases of up to a packet's
	// size each.
	caps.TopicAliasMaximum = s.cfg.TopicAliases
	// A client that stops acknowledging (a dashboard tab that stopped
	// reading) gets its QoS 1 messages kept as inflights, each stored with
	// its session, up to this many: mochi's default is 8,192, and a
	// handheld never needs more than a few offers and alerts.
	caps.MaximumInflight = s.cfg.MaxInflight
	s.mq = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: caps,
		Logger:       s.cfg.Log,
		// Per connection mochi preallocates the outbound queue (8 bytes a
		// slot) and the read buffer; at 5,000 handhelds that is memory, and
		// a handheld's messages are a few hundred bytes.
		ClientNetWriteBufferSize: 4096,
		ClientNetReadBufferSize:  1024,
		SysTopicResendInterval:   10,
	})
	if err := s.mq.AddHook(&hook{srv: s}, nil); err != nil {
		return fmt.Errorf("add hook: %w", err)
	}
	if s.cfg.Sessions != nil {
		s.persist = &persistHook{store: s.cfg.Sessions, srv: s}
		if err := s.mq.AddHook(s.persist, nil); err != nil {
			return fmt.Errorf("add session hook: %w", err)
		}
	}
	s.stop = make(chan struct{})
	if err := stopRetainedScan(s.mq); err != nil {
		s.cfg.Log.Warn("mochi's retained-expiry scan left running", "err", err)
	} else {
		go s.sweepRetained(time.Second)
	}
	if s.cfg.TCPAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.TCPAddr)
		if err != nil {
			return fmt.Errorf("mqtt listen %s: %w", s.cfg.TCPAddr, err)
		}
		if s.cfg.WrapListener != nil {
			ln = s.cfg.WrapListener(ln)
		}
		if s.cfg.TLS != nil {
			ln = tls.NewListener(ln, s.cfg.TLS)
		}
		s.ln = newAcceptRetry(ln, s.cfg.Log, func(err error) { s.failed.Store(&err) })
		s.tcp = newTCPListener("tcp", &deadlineListener{Listener: s.ln, d: s.cfg.ConnectTimeout})
		if err := s.mq.AddListener(s.tcp); err != nil {
			ln.Close()
			return fmt.Errorf("add tcp listener: %w", err)
		}
	}
	s.ws = newWSListener("ws", s.cfg.AllowedOrigins, s.cfg.ConnectTimeout, s.cfg.Log)
	if err := s.mq.AddListener(s.ws); err != nil {
		return fmt.Errorf("add ws listener: %w", err)
	}
	return s.mq.Serve()
}

// Addr is the bound MQTT TCP address ("" when disabled).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Err says why the broker no longer accepts MQTT over TCP (nil: it does).
// Accept errors that pass (out of file descriptors) are retried and do not
// count.
func (s *Server) Err() error {
	if p := s.failed.Load(); p != nil {
		return fmt.Errorf("mqtt listener stopped: %w", *p)
	}
	return nil
}

// WebSocket is the MQTT-over-WebSocket endpoint, to be mounted at /mqtt.
func (s *Server) WebSocket() http.Handler { return s.ws }

// Publish delivers a message from the server itself (no ACL).
func (s *Server) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return s.mq.Publish(topic, payload, retain, qos)
}

// PublishExpiring is Publish with an MQTT 5 message expiry (seconds; 0:
// none): a message queued for an offline session is dropped when it is no
// longer worth delivering, and v5 receivers see the time left.
func (s *Server) PublishExpiring(topic string, payload []byte, retain bool, qos byte, expiry uint32) error {
	if expiry == 0 {
		return s.Publish(topic, payload, retain, qos)
	}
	cl, ok := s.mq.Clients.Get(mqtt.InlineClientId)
	if !ok {
		return errors.New("broker: inline client missing")
	}
	return s.mq.InjectPacket(cl, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic, Payload: payload, PacketID: uint16(qos),
		Properties: packets.Properties{MessageExpiryInterval: expiry},
	})
}

// CountByRole counts connected sessions by the part of their identity
// before ':' (the role).
func (s *Server) CountByRole() map[string]int {
	out := map[string]int{}
	if s.mq == nil {
		return out
	}
	for _, cl := range s.mq.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() {
			continue
		}
		role, _, _ := strings.Cut(string(cl.Properties.Username), ":")
		out[role]++
	}
	return out
}

// Subscribe adds an in-process subscription; fn runs on the publisher's
// goroutine and must not block.
func (s *Server) Subscribe(filter string, id int, fn func(topic string, payload []byte)) error {
	return s.mq.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	})
}

// Inflight is how many QoS 1 messages to client id await its
// acknowledgement (-1: no such client).
func (s *Server) Inflight(id string) int {
	if s.mq == nil {
		return -1
	}
	cl, ok := s.mq.Clients.Get(id)
	if !ok {
		return -1
	}
	return cl.State.Inflight.Len()
}

// MessagesSent is how many messages the broker has sent to clients.
func (s *Server) MessagesSent() int64 {
	if s.mq == nil {
		return 0
	}
	return atomic.LoadInt64(&s.mq.Info.MessagesSent)
}

// ClientCount is the number of connected clients.
func (s *Server) ClientCount() int64 {
	if s.mq == nil {
		return 0
	}
	return atomic.LoadInt64(&s.mq.Info.ClientsConnected)
}

// Disconnect ends every live session of identity (a revoked credential):
// MQTT 5 clients are told 0x87 not authorized.
func (s *Server) Disconnect(identity string) int {
	if s.mq == nil {
		return 0
	}
	n := 0
	for _, cl := range s.mq.Clients.GetAll() {
		if !cl.Net.Inline && string(cl.Properties.Username) == identity && !cl.Closed() {
			_ = s.mq.DisconnectClient(cl, packets.ErrNotAuthorized)
			n++
		}
	}
	if n > 0 {
		s.cfg.Log.Info("sessions ended", "identity", identity, "count", n)
	}
	return n
}

// Close disconnects every client (TCP and WebSocket) and stops the broker.
// Safe to call twice.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		if s.stop != nil {
			close(s.stop)
		}
		if s.mq != nil {
			s.quiesce(5 * time.Second)
			err = s.mq.Close()
		}
		s.logs.Flush()
	})
	return err
}

// sweepRetained expires retained messages every period, as mochi's own
// scan did before stopRetainedScan stopped it.
func (s *Server) sweepRetained(period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.retained.sweep(s.mq, now.Unix(), func(topic string) {
				if s.persist != nil {
					s.persist.OnRetainedExpired(topic)
				}
			})
		}
	}
}

// quiesce stops new connections and disconnects every client, waiting up to
// d for their sessions to end, before mochi's Close runs. mochi v2.7.9's
// Clients.GetByListener (called by Close) takes the clients' read lock
// twice; a client removing itself between the two (a handheld going away
// during shutdown) waits for the write lock, the second read lock waits
// behind it, and shutdown hangs for ever (seen in TestReconnectStorm).
// With no client left and no listener accepting, nobody writes that map.
func (s *Server) quiesce(d time.Duration) {
	if s.ln != nil {
		_ = s.ln.Close()
	}
	if s.ws != nil {
		s.ws.mu.Lock()
		s.ws.closed = true
		s.ws.mu.Unlock()
	}
	for _, cl := range s.mq.Clients.GetAll() {
		if !cl.Net.Inline {
			_ = s.mq.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	until := time.After(d)
	if s.tcp != nil && !s.tcp.wait(until) {
		s.cfg.Log.Warn("broker shutdown: clients still connected after the wait", "after", d)
		return
	}
	done := make(chan struct{})
	go func() { s.mq.Listeners.ClientsWg.Wait(); close(done) }()
	select {
	case <-done:
	case <-until:
		s.cfg.Log.Warn("broker shutdown: clients still connected after the wait", "after", d)
	}
}

// deadlineListener gives every accepted connection a read deadline, so a
// client that connects and sends no CONNECT is dropped (mochi reads CONNECT
// with no deadline; docs/libraries.md §1). mochi replaces the deadline with the
// keepalive one after CONNECT.
type deadlineListener struct {
	net.Listener
	d time.Duration
}

func (l *deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(l.d))
	return c, nil
}

// Filters lists the subscription filters beginning with prefix of every
// session, live or kept, of identity: "locate now" finds an OwnTracks
// device's command topic this way, also after a restart.
func (s *Server) Filters(identity, prefix string) []string {
	var out []string
	for _, cl := range s.mq.Clients.GetAll() {
		if cl.Net.Inline || string(cl.Properties.Username) != identity {
			continue
		}
		for f := range cl.State.Subscriptions.GetAll() {
			if strings.HasPrefix(f, prefix) {
				out = append(out, f)
			}
		}
	}
	return out
}
