package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/bridge/feed"
	"github.com/depotcc/depot/bridge/upstream"
	"github.com/depotcc/depot/broker"
	"github.com/depotcc/depot/push"
	"github.com/depotcc/depot/storage"
	"github.com/depotcc/depot/ui"
	"github.com/depotcc/depot/ui/auth"
	"github.com/depotcc/depot/ui/setup"
)

// ServeConfig is everything `depot serve` is told.
type ServeConfig struct {
	Data           string
	HTTPAddr       string
	OsmAndAddr     string
	MQTTAddr       string
	Depot          string
	Demo           bool
	DemoRoutes     int
	DemoRate       time.Duration
	CortexURL      string
	CortexInterval time.Duration
	TLSCert        string
	TLSKey         string
	AllowedOrigins string
	MapTiles       string
	LogLevel       string
	TokenTTL       time.Duration
	SilentAfter    time.Duration
	RescueSpeed    float64
	PayrollSecret  string
	EventRetention time.Duration
	PublishRate    float64
	PublishBurst   int
	BackupInterval time.Duration
	BackupKeep     int
	HistoryKeep    time.Duration
	MergeHour      int
	AdminPassword  string // DEPOT_ADMIN_PASSWORD only: a flag would show in ps
	TrustedProxies string
	Pprof          bool
	PublicURL      string
	FCMCredentials string
	// Upstream: the fleet's NATS JetStream cluster (bridge/upstream).
	Upstream         string
	UpstreamCreds    string
	UpstreamCA       string
	UpstreamReplicas int
	FCMEndpoint      string
	NoWebPush        bool
	PushContact      string
	// WatchdogHungAfter: under systemd's watchdog, how long one batch may
	// be in the commit pipeline before the pings stop (systemd.go).
	WatchdogHungAfter time.Duration

	PayrollSecretFile     string
	CortexCredentialsFile string

	warnings    []string     // found while reading the configuration; logged by Run
	trusted     []*net.IPNet // --trusted-proxies, parsed
	payrollFrom string       // the --payroll-secret-file PayrollSecret was read from
	feedHeader  http.Header  // from --cortex-credentials-file
	publicURL   *url.URL     // --public-url, parsed
}

// Main is the running appliance. Tests build one with NewMain, set Config,
// and call Run, so they exercise the real wiring.
type Main struct {
	Config ServeConfig
	Log    *slog.Logger
	Out    io.Writer
	// Clock is what every part that judges the depot's time reads: fix
	// validation, the domain's rules, the API, retention and compaction;
	// time.Now when nil. Credentials (token expiry, and the broker's timer
	// that ends a token's session) keep the wall clock.
	Clock func() time.Time

	store    *storage.DB
	depot    *bridge.Depot
	broker   *broker.Server
	web      *ui.Server
	ingest   *ingest
	metrics  *metrics
	accounts *auth.Accounts
	started  time.Time
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closed   bool

	// httpConnCap is the HTTP connection cap the open files limit allows
	// (for ui.Config.MaxConns).
	httpConnCap int
	tls         *tls.Config // the TCP and HTTP listeners', when --tls-cert is set
	demo        *feed.Demo  // the demo feed, with --demo
	push        *push.Outbox
	upstream    *upstream.Forwarder // nil without --upstream
	commits     chan struct{}       // a commit stored events: wakes the forwarder
	acks        *liveAcks           // inbox messages drivers' sessions acknowledged
	vapid       string              // the Web Push public key ("" when off)
	notify      *notifier           // the service manager's socket; nil outside systemd
	watchdog    time.Duration       // systemd's watchdog timeout; 0: none

	// maintenance counts the backups and compactions under way: they hold
	// the store, so the commit pipeline waits for them without being hung.
	maintenance atomic.Int32

	faults faults
}

// faults are what tests inject into a Main to see it fail; a real run has
// none, and no flag or configuration can set them.
type faults struct {
	bcryptCost       int                             // 0: bcrypt's default
	wrapStore        func(bridge.Store) bridge.Store // a failing or stalling disk
	noWS             bool                            // /mqtt refuses the upgrade, as a proxy that strips it would
	noSSE            bool                            // /api/v1/stream is cut too
	logTo            io.Writer                       // the log goes here instead of Out
	wrapMQTTListener func(net.Listener) net.Listener // accept errors
	pushGrace        time.Duration                   // the live session's head start (push.DefaultGrace)
	pushPoll         time.Duration                   // how often the push outbox looks (push.DefaultPoll)
}

// NewMain returns a Main with the default configuration, logging to out.
func NewMain(out io.Writer) *Main {
	return &Main{Out: out, Config: DefaultServeConfig()}
}

// DefaultServeConfig is what `depot serve` runs with when told nothing.
func DefaultServeConfig() ServeConfig {
	return ServeConfig{
		Data: "./data", HTTPAddr: ":8080", FCMEndpoint: "https://fcm.googleapis.com/v1", UpstreamReplicas: 1, MQTTAddr: ":1883", Depot: "DEMO1",
		DemoRoutes: 30, DemoRate: time.Second, CortexInterval: 30 * time.Second, LogLevel: "info",
		TokenTTL: 12 * time.Hour, SilentAfter: 5 * time.Minute, RescueSpeed: 30, EventRetention: 30 * 24 * time.Hour,
		PublishRate: 20, PublishBurst: 60, BackupInterval: 24 * time.Hour, BackupKeep: 7,
		HistoryKeep: 7 * 24 * time.Hour, MergeHour: 3, // see README: memory and start time grow with history
		WatchdogHungAfter: time.Minute,
	}
}

// ParseFlags reads the serve flags and their DEPOT_* environment variables.
func (m *Main) ParseFlags(args []string) error {
	if err := m.Config.Parse(m.flagSet(), args); err != nil {
		return err
	}
	return m.Config.validate()
}

// flagSet is the flag set of `depot serve`, onto m.Config (its defaults are
// the Config's values): ParseFlags parses it, `depot env-file` lists it.
func (m *Main) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("depot serve", flag.ContinueOnError)
	fs.SetOutput(m.Out)
	m.Config.Register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: depot serve [flags]\n\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nEnvironment: DEPOT_<FLAG_NAME> for every flag; DEPOT_ADMIN_PASSWORD sets the\n"+
			"password of user admin at first start (otherwise one is generated and logged once).\n")
	}
	return fs
}

// Register adds every serve flag to fs, with c's values as defaults and c's
// fields as destinations: `depot serve` and `depot doctor` read the same
// flags (and, through Parse, the same DEPOT_* variables).
func (c *ServeConfig) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.Data, "data", c.Data, "data directory (created if missing)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "dashboard, REST API and MQTT over WebSocket (/mqtt)")
	fs.StringVar(&c.OsmAndAddr, "osmand-addr", c.OsmAndAddr, "also take Traccar Client's OsmAnd requests on this address (e.g. :5055), at /<device token>; off when empty (they are always taken at /api/v1/osmand/<device token> on the HTTP port)")
	fs.StringVar(&c.MQTTAddr, "mqtt-addr", c.MQTTAddr, "MQTT over TCP (8883 by convention with TLS)")
	fs.StringVar(&c.Depot, "depot", c.Depot, "depot id used in every topic")
	fs.BoolVar(&c.Demo, "demo", c.Demo, "simulated route feed and handhelds")
	fs.IntVar(&c.DemoRoutes, "demo-routes", c.DemoRoutes, "routes in the demo (1-35)")
	fs.DurationVar(&c.DemoRate, "demo-rate", c.DemoRate, "interval between GPS fixes of each demo handheld")
	fs.StringVar(&c.CortexURL, "cortex-url", c.CortexURL, "route-data feed: http(s)://… or file://…")
	fs.DurationVar(&c.CortexInterval, "cortex-interval", c.CortexInterval, "how often the route feed is read")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate: TLS on both listeners")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key for --tls-cert")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", c.AllowedOrigins, "comma-separated extra origins allowed to open /mqtt")
	fs.StringVar(&c.MapTiles, "map-tiles", c.MapTiles, "optional map tile URL template ({z}/{x}/{y}); none: a plain offline map")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.DurationVar(&c.TokenTTL, "token-ttl", c.TokenTTL, "lifetime of a login token (a shift)")
	fs.DurationVar(&c.SilentAfter, "silent-after", c.SilentAfter, "a driver on an unfinished route with no fix for this long is shown silent")
	fs.Float64Var(&c.RescueSpeed, "rescue-speed", c.RescueSpeed, "average speed (km/h, straight line) for a rescuer's estimated arrival")
	fs.DurationVar(&c.EventRetention, "event-retention", c.EventRetention, "how long the event log keeps events")
	fs.DurationVar(&c.HistoryKeep, "history-retention", c.HistoryKeep, "how long GPS history is kept")
	fs.IntVar(&c.MergeHour, "merge-hour", c.MergeHour, "local hour (0-23) of the nightly store compaction; -1: never")
	fs.DurationVar(&c.BackupInterval, "backup-interval", c.BackupInterval, "how often the store is backed up to <data>/backups (0: never)")
	fs.IntVar(&c.BackupKeep, "backup-keep", c.BackupKeep, "how many backups to keep")
	fs.Float64Var(&c.PublishRate, "mqtt-publish-rate", c.PublishRate, "publishes per second allowed to one MQTT identity, across its connections and reconnects (token bucket; refused publishes count)")
	fs.IntVar(&c.PublishBurst, "mqtt-publish-burst", c.PublishBurst, "burst of publishes allowed to one MQTT identity")
	fs.StringVar(&c.PayrollSecret, "payroll-secret", c.PayrollSecret, "HMAC-SHA256 secret of the payroll webhook (unset: webhook off); shows in ps: prefer --payroll-secret-file or DEPOT_PAYROLL_SECRET")
	fs.StringVar(&c.PayrollSecretFile, "payroll-secret-file", c.PayrollSecretFile, "file holding the payroll webhook's secret (trailing newline ignored; mode 600)")
	fs.StringVar(&c.CortexCredentialsFile, "cortex-credentials-file", c.CortexCredentialsFile,
		"file with the route feed's credentials, so --cortex-url carries none (mode 600): a line \"user:password\" (HTTP Basic)\n"+
			"or header lines \"Name: value\" such as \"Authorization: Bearer …\" or \"X-Api-Key: …\"")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", c.TrustedProxies,
		"comma-separated CIDR ranges (or addresses) of reverse proxies whose X-Forwarded-For names the client;\n"+
			"unset: the peer address is the client's, whatever the headers say")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve /debug/pprof (admins only); off by default")
	fs.StringVar(&c.Upstream, "upstream", c.Upstream, "forward the event log to this NATS JetStream cluster (nats://h1:4222,nats://h2:4222); off when unset")
	fs.StringVar(&c.UpstreamCreds, "upstream-creds", c.UpstreamCreds, "NATS credentials file for --upstream")
	fs.StringVar(&c.UpstreamCA, "upstream-ca", c.UpstreamCA, "CA certificate (PEM) of the --upstream servers' TLS")
	fs.IntVar(&c.UpstreamReplicas, "upstream-replicas", c.UpstreamReplicas, "replicas of the DEPOTS stream when this depot creates it (3 on a cluster)")
	fs.StringVar(&c.FCMCredentials, "fcm-credentials", c.FCMCredentials, "Firebase service-account JSON file: push VTO offers, rescues and reassignments to native apps through Firebase Cloud Messaging (off when unset)")
	fs.StringVar(&c.FCMEndpoint, "fcm-endpoint", c.FCMEndpoint, "Firebase Cloud Messaging HTTP v1 endpoint (a proxy or a test double)")
	fs.BoolVar(&c.NoWebPush, "no-webpush", c.NoWebPush, "do not offer Web Push to the driver app (on by default: its VAPID keys are made at first start and kept in the data directory)")
	fs.StringVar(&c.PushContact, "push-contact", c.PushContact, "contact push services may use to reach the operator (mailto: or https: URL; default: --public-url)")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL,
		"scheme://host[:port] where handhelds reach the depot (e.g. https://depot.example:8080), for the links and QR codes\n"+
			"of device set-ups; the OwnTracks MQTT set-up names its host and the --mqtt-addr port. Unset: the host the admin's request came to")
	fs.DurationVar(&c.WatchdogHungAfter, "watchdog-hung-after", c.WatchdogHungAfter,
		"under systemd's watchdog (WatchdogSec in the unit): stop the keep-alive pings once one batch of work has been\n"+
			"in the commit pipeline (disk write and publish) this long, so that systemd restarts a hung depot")
}

// Parse parses args into fs (whose flags Register added), then fills what
// the command line left unset from DEPOT_<FLAG_NAME>, reads
// DEPOT_ADMIN_PASSWORD and notes what to warn about. It does not validate.
func (c *ServeConfig) Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.AdminPassword = os.Getenv("DEPOT_ADMIN_PASSWORD")
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "payroll-secret" })
	if given {
		c.warnings = append(c.warnings, "--payroll-secret on the command line shows in ps to every user of the machine; "+
			"use --payroll-secret-file or DEPOT_PAYROLL_SECRET")
	}
	return envFlags(fs)
}

func (c *ServeConfig) validate() error {
	if err := c.loadSecretFiles(); err != nil {
		return err
	}
	trusted, err := ui.ParseTrustedProxies(c.TrustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	c.trusted = trusted
	c.publicURL = nil
	if c.PublicURL != "" {
		u, err := setup.ParseBase(c.PublicURL)
		if err != nil {
			return fmt.Errorf("--public-url: %w", err)
		}
		c.publicURL = u
	}
	switch {
	case !bridge.ValidID(c.Depot):
		return fmt.Errorf("--depot %q: want 1-64 letters, digits, '-', '_' or '.'", c.Depot)
	case c.CortexInterval < time.Second:
		return fmt.Errorf("--cortex-interval %s: want at least 1s", c.CortexInterval)
	case c.DemoRate < 10*time.Millisecond:
		return fmt.Errorf("--demo-rate %s: want at least 10ms", c.DemoRate)
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case c.Data == "":
		return errors.New("--data is required")
	case c.TokenTTL < time.Minute:
		return fmt.Errorf("--token-ttl %s: want at least 1m", c.TokenTTL)
	case c.SilentAfter < 10*time.Second:
		return fmt.Errorf("--silent-after %s: want at least 10s", c.SilentAfter)
	case c.RescueSpeed < 1 || c.RescueSpeed > 200:
		return fmt.Errorf("--rescue-speed %v: want 1-200 km/h", c.RescueSpeed)
	case c.HistoryKeep < 24*time.Hour:
		return fmt.Errorf("--history-retention %s: want at least 24h", c.HistoryKeep)
	case c.MergeHour < -1 || c.MergeHour > 23:
		return fmt.Errorf("--merge-hour %d: want 0-23, or -1", c.MergeHour)
	case c.BackupKeep < 1:
		return errors.New("--backup-keep: at least 1")
	case c.PublishRate <= 0 || c.PublishBurst < 1:
		return errors.New("--mqtt-publish-rate and --mqtt-publish-burst must be positive")
	case c.WatchdogHungAfter <= 0:
		return fmt.Errorf("--watchdog-hung-after %s: want a positive duration", c.WatchdogHungAfter)
	case c.EventRetention < time.Hour:
		return fmt.Errorf("--event-retention %s: want at least 1h", c.EventRetention)
	case c.PayrollSecret != "" && len(c.PayrollSecret) < 16:
		return errors.New("--payroll-secret: at least 16 characters")
	case c.AdminPassword != "" && len(c.AdminPassword) < auth.MinPasswordLen:
		return fmt.Errorf("DEPOT_ADMIN_PASSWORD: at least %d characters", auth.MinPasswordLen)
	}
	if c.CortexURL != "" {
		if _, err := feed.NewSource(c.CortexURL); err != nil {
			return err
		}
	}
	return nil
}

// Run opens the store, starts the broker, the web server, the feed and (with
// --demo) the simulated handhelds, and returns once all are ready.
func (m *Main) Run(ctx context.Context) error {
	m.started = time.Now()
	if m.Clock == nil {
		m.Clock = time.Now
	}
	rctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	// Each step builds one part from the parts before it; a failed step
	// leaves what was built for Close.
	for _, step := range []func() error{
		m.openLog,
		m.openNotify,
		m.openStore,
		m.openAccounts,
		m.openDomainAndBroker,
		m.openPush,
		m.openUpstream,
		m.startWeb,
		func() error { return m.startJobs(rctx) },
		func() error { return m.startDemo(rctx) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	c := m.Config
	m.Log.Info("listening", "http", m.web.Addr(), "mqtt", m.broker.Addr(), "depot", c.Depot,
		"data", c.Data, "demo", c.Demo, "version", Version)
	if c.Demo {
		m.Log.Info("demo depot ready: open the dashboard", "url", "http://"+browseAddr(m.web.Addr()))
	}
	// The store is open, the broker and the web server listen: ready.
	return m.ready(rctx)
}

// openLog sets up the log (unless the caller gave one), logs what reading
// the configuration found, and loads the TLS key pair.
func (m *Main) openLog() error {
	c := m.Config
	if m.Log == nil {
		out := m.Out
		if m.faults.logTo != nil {
			out = m.faults.logTo
		}
		l, err := newLogger(out, c.LogLevel)
		if err != nil {
			return err
		}
		m.Log = l
	}
	for _, w := range c.warnings {
		m.Log.Warn(w)
	}
	if paceNote != nil {
		m.Log.Info("go collector", paceNote...)
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		m.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return nil
}

// openStore opens the store, or says how to recover a damaged one.
func (m *Main) openStore() error {
	store, err := storage.Open(dbDir(m.Config.Data), m.Log.With("part", "storage"))
	if errors.Is(err, storage.ErrCorrupt) {
		return damaged(m.Config.Data, err)
	}
	if err != nil {
		return err
	}
	m.store = store
	// An older store is upgraded in place, after a backup (the way back
	// if the upgrade fails half-way); a newer one was refused by Open.
	return store.Migrate(m.backupNow)
}

// openAccounts opens the identity service and makes sure there is an
// admin.
func (m *Main) openAccounts() error {
	c := m.Config
	key, err := auth.LoadOrCreateKey(c.Data)
	if err != nil {
		return err
	}
	m.accounts = &auth.Accounts{Store: m.store, Key: key, Depot: c.Depot, TTL: c.TokenTTL, Cost: m.faults.bcryptCost,
		Log: m.Log.With("part", "auth")}
	if err := m.accounts.Open(); err != nil {
		return err
	}
	if pw, err := m.accounts.EnsureAdmin(c.AdminPassword); err != nil {
		return err
	} else if pw != "" {
		m.Log.Warn("first start: created user admin with a generated password; it is shown only this once",
			"username", "admin", "password", pw)
	}
	return nil
}

// openDomainAndBroker builds the domain and the broker, which need each
// other: the broker hands publishes and sessions to the domain, the domain
// publishes through the broker. The domain is built first and gets its
// publisher when it opens.
func (m *Main) openDomainAndBroker() error {
	c := m.Config
	m.metrics = newMetrics()
	var dstore bridge.Store = m.store
	if m.faults.wrapStore != nil {
		dstore = m.faults.wrapStore(m.store)
	}
	m.depot = &bridge.Depot{ID: c.Depot, Store: dstore, Log: m.Log.With("part", "depot"), Metrics: m.metrics,
		SilentAfter: c.SilentAfter, RescueSpeedKmh: c.RescueSpeed, Now: m.Clock}
	if c.Upstream != "" {
		m.commits = make(chan struct{}, 1)
		m.depot.OnCommit = func() {
			select {
			case m.commits <- struct{}{}:
			default: // one wake-up pending is enough
			}
		}
	}
	sess := &sessions{depot: m.depot, log: m.Log.With("part", "presence"), count: map[string]int{}}
	m.acks = &liveAcks{seen: map[string]time.Time{}, now: m.Clock}
	m.ingest = &ingest{depot: m.depot, id: c.Depot, log: m.Log.With("part", "ingest"), now: m.Clock, sessions: sess,
		filters: func(identity, prefix string) []string { return m.broker.Filters(identity, prefix) },
		publish: func(topic string, payload []byte, qos byte, expiry uint32) error {
			return m.broker.PublishExpiring(topic, payload, false, qos, expiry)
		},
		hh: handhelds{httpAt: map[string]time.Time{}, pending: map[string]bool{}}}
	// The caps follow the open files limit, so the process refuses a
	// client before the kernel refuses it a file.
	mqttCap, httpCap := connCaps(raiseFileLimit(m.Log))
	m.httpConnCap = httpCap
	mauth := mqttAuth{accounts: m.accounts, depot: c.Depot}
	m.broker = broker.New(broker.Config{
		MaxClients: int64(mqttCap), WrapListener: m.faults.wrapMQTTListener,
		TCPAddr: c.MQTTAddr, TLS: m.tls, Log: m.Log.With("part", "broker"),
		AllowedOrigins: splitList(c.AllowedOrigins),
		Auth:           mauth,
		KeepRetained:   mauth.KeepStoredRetained,
		KeepSession:    mauth.KeepStoredSession,
		Ingest:         m.ingest,
		Observer:       sess,
		Acked:          m.acks.acked,
		Sessions:       m.store,
		PublishRate:    c.PublishRate, PublishBurst: c.PublishBurst,
	})
	// A revoked device or a deleted user loses its MQTT sessions at once.
	m.accounts.OnRevoke = func(id bridge.Identity) {
		m.broker.Disconnect(id.String())
		// A revoked or replaced handheld is woken no more (a lost phone
		// must not keep getting offers and rescue addresses).
		if m.push != nil && id.Role == bridge.RoleDriver {
			if err := m.push.DropDriver(id.Subject); err != nil {
				m.Log.Warn("push targets of a revoked device", "driver", id.Subject, "err", err)
			}
		}
	}
	m.metrics.watch(m.depot, m.broker, m.ingest)
	m.metrics.watchStore(m.store.Inspect)

	if err := m.depot.Open(m.broker); err != nil {
		return err
	}
	if err := m.broker.Start(); err != nil {
		return err
	}
	m.depot.Restore()
	return nil
}

// startWeb starts the HTTP server and feeds its SSE hub from the events
// topic, so SSE clients get what MQTT dashboards get.
func (m *Main) startWeb() error {
	c := m.Config
	var mqttWS http.Handler = m.broker.WebSocket()
	if m.faults.noWS {
		mqttWS = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "upgrade refused", http.StatusBadGateway)
		})
	}
	m.web = ui.New(ui.Config{
		Addr: c.HTTPAddr, TLS: m.tls, DepotID: c.Depot, Center: [2]float64{feed.DemoLat, feed.DemoLng},
		MapTiles: c.MapTiles, Version: Version, Depot: m.depot, Archive: m.store, Accounts: m.accounts,
		PayrollSecret: c.PayrollSecret, Dispatch: m.depot, Handhelds: m.ingest, OsmAndAddr: c.OsmAndAddr, Now: m.Clock, NoStream: m.faults.noSSE, Backup: m.backupNow, Box: m.box, Metrics: m.metrics.handler(),
		Ready: func() error {
			if h := m.depot.StoreHealth(); !h.OK {
				return fmt.Errorf("store failing (%s); %d events waiting to be written", h.Error, h.Pending)
			}
			return nil
		},
		Push: pushAPI{o: m.push, vapid: m.vapid},
		MQTT: mqttWS, Health: m.health, Log: m.Log.With("part", "http"), Live: m.broker.Err,
		TrustedProxies: c.trusted, Pprof: c.Pprof, MaxConns: m.httpConnCap,
		PublicURL: c.publicURL, MQTTPort: setup.PortOf(m.broker.Addr()), MQTTTLS: m.tls != nil,
	})
	if err := m.web.Start(); err != nil {
		return err
	}
	if err := m.broker.Subscribe(m.depot.Topics.Events(), 1, func(_ string, p []byte) { m.web.Events().Publish(p) }); err != nil {
		return fmt.Errorf("subscribe the SSE hub: %w", err)
	}
	return nil
}

// startJobs starts the route feed (its first cycle before "ready") and the
// periodic jobs: heartbeat, presence clock, history folding, retention and
// backups.
func (m *Main) startJobs(ctx context.Context) error {
	c := m.Config
	var src bridge.RouteSource
	switch {
	case c.CortexURL != "":
		src, _ = feed.NewSource(c.CortexURL)
		if hs, ok := src.(*feed.HTTPSource); ok {
			hs.Header = c.feedHeader
		}
	case c.Demo:
		m.demo = feed.NewDemo(m.Clock(), c.DemoRoutes, 1)
		src = m.demo
	}
	if src != nil {
		m.depot.SyncOnce(ctx, src)
		m.goRun(func() { m.depot.Sync(ctx, src, c.CortexInterval) })
	} else {
		m.Log.Warn("no route feed: start with --cortex-url or --demo to see routes")
	}
	m.goRun(func() { m.push.Run(ctx) })
	if m.upstream != nil {
		m.goRun(func() { m.upstream.Run(ctx) })
	}
	m.goRun(func() { every(ctx, 5*time.Second, true, m.heartbeat) })
	m.goRun(func() { every(ctx, time.Second, false, m.tick) })
	m.goRun(func() { every(ctx, foldEvery, false, m.foldHistory) })
	m.goRun(func() { every(ctx, time.Minute, false, m.foldEvents) })
	lastMerge := m.Clock()
	m.goRun(func() { every(ctx, time.Hour, true, func() { m.retention(&lastMerge) }) })
	if c.BackupInterval > 0 {
		// A depot restarted more often than the interval would never reach
		// its first tick: a backup older than the interval (or none) is
		// taken now, off the start's path.
		due := backupDue(c.Data, c.BackupInterval, time.Now())
		m.goRun(func() { every(ctx, c.BackupInterval, due, m.scheduledBackup) })
	}
	return nil
}

// startDemo gives the demo's handhelds credentials and drives them over
// real MQTT (TLS when the box has it), as real handhelds would.
func (m *Main) startDemo(ctx context.Context) error {
	if m.demo == nil {
		return nil
	}
	tokens, err := m.demoAccounts(m.demo)
	if err != nil {
		return err
	}
	mqttURL := m.broker.Addr()
	var simTLS *tls.Config
	if m.tls != nil {
		mqttURL, simTLS = "tls://"+mqttURL, selfTLS(m.tls.Certificates[0])
	}
	demo, c := m.demo, m.Config
	m.goRun(func() {
		err := simulate(ctx, simConfig{
			MQTT: mqttURL, TLS: simTLS, Depot: c.Depot, Drivers: demo.Drivers(), Tokens: tokens, Demo: demo,
			Interval: c.DemoRate, QoS: 1, Log: m.Log.With("part", "demo"),
		})
		if err != nil && ctx.Err() == nil {
			m.Log.Error("demo handhelds stopped", "err", err)
		}
	})
	return nil
}

// selfTLS is the client side for the box talking to itself over loopback:
// it trusts exactly the appliance's own certificate, whatever names it
// carries.
func selfTLS(own tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the exact match below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], own.Certificate[0]) {
				return errors.New("not the appliance's own certificate")
			}
			return nil
		},
	}
}

// demoAccounts gives the demo handhelds device credentials, as real ones
// have, and the demo a dispatcher whose password is logged.
func (m *Main) demoAccounts(demo *feed.Demo) (map[string]string, error) {
	tokens := map[string]string{}
	for _, d := range demo.Drivers() {
		tok, err := m.accounts.CreateDevice(d, "demo handheld")
		if err != nil {
			return nil, err
		}
		tokens[d] = tok
	}
	pw := os.Getenv("DEPOT_DEMO_PASSWORD")
	if len(pw) < auth.MinPasswordLen {
		pw = auth.RandomSecret(9)
	}
	if err := m.accounts.SetPassword("dispatcher", pw, bridge.RoleDispatcher); err != nil {
		return nil, err
	}
	m.Log.Info("demo dispatcher: log in to the dashboard with", "username", "dispatcher", "password", pw)
	return tokens, nil
}

func (m *Main) goRun(f func()) {
	m.wg.Add(1)
	go func() { defer m.wg.Done(); f() }()
}

// HTTPAddr and MQTTAddr are the bound addresses once Run has returned.
func (m *Main) HTTPAddr() string { return m.web.Addr() }
func (m *Main) MQTTAddr() string { return m.broker.Addr() }

// Close stops accepting, lets in-flight work finish, flushes and closes the
// store. Safe to call twice and after a failed Run.
func (m *Main) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	m.stopping()
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.web != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = m.web.Shutdown(ctx)
		cancel()
	}
	if m.broker != nil {
		_ = m.broker.Close()
	}
	if m.depot != nil {
		m.depot.Close()
	}
	var err error
	if m.store != nil {
		err = m.store.Close()
	}
	if m.Log != nil {
		m.Log.Info("stopped")
	}
	return err
}

// health is /healthz and the heartbeat: the bound addresses, the feed and
// the counters.
func (m *Main) health() map[string]any {
	s := &m.depot.Stats
	return map[string]any{
		"status":  "ok",
		"depot":   m.Config.Depot,
		"version": Version,
		"mqtt":    m.broker.Addr(),
		"http":    m.web.Addr(),
		"uptimeS": int64(time.Since(m.started).Seconds()),
		"clients": m.broker.ClientCount(),
		"lastSeq": m.depot.LastSeq(),
		"feed":    m.depot.Feed(),
		"fixes": map[string]any{
			"accepted": s.FixesAccepted.Load(), "late": s.FixesLate.Load(), "refused": m.ingest.refusedCounts(),
		},
		"mqttRefused": map[string]int64{
			"connect": m.broker.Stats.ConnectRefused.Load(), "publish": m.broker.Stats.PublishDenied.Load(),
			"read": m.broker.Stats.ReadDenied.Load(),
		},
		"events":       s.Events.Load(),
		"commits":      s.Commits.Load(),
		"commitErrors": s.CommitErrors.Load(),
		"store":        m.depot.StoreHealth(),
		"push":         m.pushHealth(),
		"upstream":     m.upstreamHealth(),
	}
}

// every runs fn every d until ctx ends; first says whether it also runs
// once at once.
func every(ctx context.Context, d time.Duration, first bool, fn func()) {
	if first {
		fn()
	}
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}

// heartbeat emits system:status and the retained heartbeat (every 5 s).
func (m *Main) heartbeat() {
	byRole := m.broker.CountByRole()
	_, err := m.depot.Heartbeat(bridge.AppStatus{
		Connections: bridge.Connections{Handhelds: byRole[bridge.RoleDriver],
			Dashboards: byRole[bridge.RoleDispatcher] + byRole[bridge.RoleAdmin]},
		MQTTRefused: bridge.MQTTRefusals{Connect: m.broker.Stats.ConnectRefused.Load(),
			Publish: m.broker.Stats.PublishDenied.Load(), Read: m.broker.Stats.ReadDenied.Load()},
		UptimeS: int64(time.Since(m.started).Seconds()), Version: Version, Push: m.pushHealth(), Upstream: m.upstreamHealth(),
	})
	if err != nil && !errors.Is(err, bridge.ErrClosed) {
		m.Log.Warn("heartbeat", "err", err)
	}
}

// retention prunes the event log and GPS history (hourly), in small
// transactions, and compacts the store once a night.
func (m *Main) retention(lastMerge *time.Time) {
	n, err := m.store.PruneEvents(m.Clock().Add(-m.Config.EventRetention), 500)
	if err != nil {
		m.Log.Warn("event retention", "err", err)
	} else if n > 0 {
		m.Log.Info("event retention", "pruned", n)
	}
	n, err = m.store.PruneHistory(m.Clock().Add(-m.Config.HistoryKeep), 500)
	if err != nil {
		m.Log.Warn("history retention", "err", err)
	} else if n > 0 {
		m.Log.Info("history retention", "pruned", n)
	}
	if now := m.Clock(); m.Config.MergeHour == now.Hour() && now.Sub(*lastMerge) > 20*time.Hour {
		*lastMerge = now
		m.maintenance.Add(1)
		err := m.store.Merge()
		m.maintenance.Add(-1)
		if err != nil {
			m.Log.Warn("nightly compaction", "err", err)
		} else {
			m.Log.Info("nightly compaction done", "took", time.Since(now).Round(time.Millisecond))
		}
	}
}

// foldEvery is how often foldHistory runs, and how long after its end a
// minute of history is closed. A fix from the air arrives within a second
// or two; a later one (a handheld catching up after a dead zone, or one
// whose clock runs behind) is merged into its minute's block at the next
// fold, which rewrites that block. Until folded, a minute's fixes are held
// in memory and in the history journal (storage/journal.go); folding
// every 5 s keeps about a minute of them. With a record per fix, in 150 s
// runs at 10,000 fixes/s, p99 was 279 / 233 ms against 923 / 324 ms with
// 15 s.
const foldEvery = 5 * time.Second

// foldHistory turns each route's closed minutes of history into one
// record, and merges the busy commits' event blocks that make a full one:
// at 10,000 fixes/s a minute's merge, done at once, rewrote 600,000 events
// in 5–9 s of transactions; every 5 s it is a few dozen.
func (m *Main) foldHistory() {
	if _, err := m.store.CompactHistory(m.Clock().Add(-foldEvery)); err != nil {
		m.Log.Warn("fold history", "err", err)
	}
	if err := m.store.MergeEventBlocks(); err != nil {
		m.Log.Warn("merge event blocks", "err", err)
	}
}

// foldEvents turns the event log's single records into blocks and merges
// small blocks, once a minute: a block holds what came since the last fold
// (up to 1,024 events), so folding more often makes smaller blocks (one
// per heartbeat at an idle depot if it ran every 5 s), each rewritten
// again by the merge as the next ones join it.
func (m *Main) foldEvents() {
	if _, err := m.store.CompactEvents(); err != nil {
		m.Log.Warn("fold events", "err", err)
	}
}

// tick runs the depot's timers (offer expiry, silent drivers; every second).
func (m *Main) tick() {
	if err := m.depot.Tick(); err != nil && !errors.Is(err, bridge.ErrClosed) {
		m.Log.Warn("tick", "err", err)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// browseAddr turns a listen address into one a browser can open.
func browseAddr(a string) string {
	if strings.HasPrefix(a, "[::]:") {
		return "localhost:" + a[5:]
	}
	if strings.HasPrefix(a, "0.0.0.0:") {
		return "localhost:" + a[8:]
	}
	return a
}
