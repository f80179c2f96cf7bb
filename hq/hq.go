// Package hq is `depot hq`: a stateless web server over the fleet's NATS
// JetStream stream (docs/fleet.md). Each instance builds the picture of
// every depot in memory from the stream, serves the fleet page, and
// streams events to browsers over SSE with id = the stream sequence, which
// all instances share: a browser whose instance dies resumes on any other
// with no gap and no duplicate. Users and the token signing key live in a
// JetStream key-value bucket, so instances share nothing but the cluster.
package hq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/depotcc/depot/bridge/upstream"
	"github.com/depotcc/depot/ui"
	"github.com/depotcc/depot/ui/auth"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config sets up an instance.
type Config struct {
	URLs     string // nats://h1:4222,nats://h2:4222
	Creds    string // NATS credentials file; optional
	CA       string // CA of the servers' TLS certificates; optional
	Replicas int    // of the bucket when it is created; 1
	// Window is how far back in the stream an instance reads events when
	// it starts (open rescues and offers, presence); 12 h when zero.
	// Routes come from their own subjects, whatever their age.
	Window        time.Duration
	HTTPAddr      string
	Instance      string // a name in health and logs; the host name when empty
	AdminPassword string // for the first start's admin; generated when empty
	Center        [2]float64
	MapTiles      string
	Version       string
	// KeepAlive is how often an idle SSE stream gets a comment and its
	// token is checked again; 15 s when zero.
	KeepAlive time.Duration
	// HashCost is bcrypt's cost (tests lower it); the default when zero.
	HashCost int
	Log      *slog.Logger
	// NATSOptions are extra connection options (tests).
	NATSOptions []nats.Option
}

// HQ is one running instance.
type HQ struct {
	cfg      Config
	nc       *nats.Conn
	js       jetstream.JetStream
	accounts *auth.Accounts
	web      *ui.Server
	fleet    *Fleet
	ctx      context.Context // ends with Close or Kill
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	streams  atomic.Int32

	mu      sync.Mutex
	loadErr string
}

// Start connects to the cluster, opens the bucket (creating admin on the
// very first start), starts reading the stream and serves HTTP.
func Start(ctx context.Context, cfg Config) (*HQ, error) {
	if cfg.URLs == "" {
		return nil, errors.New("hq: --upstream names no NATS server")
	}
	if err := upstream.CheckURLs(cfg.URLs); err != nil {
		return nil, err
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Window <= 0 {
		cfg.Window = 12 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	h := &HQ{cfg: cfg, fleet: newFleet()}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	opts := []nats.Option{nats.Name("depot hq " + cfg.Instance), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond),
		// A cluster not up yet is waited for (openAccounts bounds the wait):
		// instances and servers start in any order.
		nats.RetryOnFailedConnect(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { cfg.Log.Warn("nats", "err", err) })}
	opts = append(opts, upstream.AuthOptions(cfg.Creds, cfg.CA)...)
	opts = append(opts, cfg.NATSOptions...)
	nc, err := nats.Connect(cfg.URLs, opts...)
	if err != nil {
		return nil, fmt.Errorf("hq: connect to %s: %w", cfg.URLs, err)
	}
	h.nc = nc
	if h.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, err
	}
	if err := h.openAccounts(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	h.web = ui.New(ui.Config{Addr: cfg.HTTPAddr, Center: cfg.Center, MapTiles: cfg.MapTiles, Version: cfg.Version,
		Accounts: h.accounts, Log: cfg.Log, Health: h.health, Ready: h.ready, Fleet: h.mount})
	if err := h.web.Start(); err != nil {
		nc.Close()
		return nil, err
	}
	h.wg.Add(2)
	go func() { defer h.wg.Done(); h.follow(h.ctx) }()
	go func() { defer h.wg.Done(); h.watchUsers(h.ctx) }()
	cfg.Log.Info("hq: serving", "http", h.web.Addr(), "nats", nc.ConnectedUrlRedacted(), "instance", cfg.Instance)
	return h, nil
}

// openAccounts opens the shared bucket, its signing key and users, and
// creates admin when there is no user at all.
func (h *HQ) openAccounts(ctx context.Context) error {
	// A cluster that is starting drops JetStream requests until it has
	// elected its leaders: each try is short, the whole wait is not.
	var kv jetstream.KeyValue
	var key []byte
	deadline := time.Now().Add(time.Minute)
	for {
		kctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var err error
		if kv, err = openBucket(kctx, h.js, h.cfg.Replicas); err == nil {
			key, err = signingKey(kctx, kv)
		}
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		h.cfg.Log.Info("hq: waiting for JetStream", "err", err)
		time.Sleep(500 * time.Millisecond)
	}
	h.accounts = &auth.Accounts{Store: kvStore{kv}, Key: key, Depot: "hq", Cost: h.cfg.HashCost, Log: h.cfg.Log}
	if err := h.accounts.Open(); err != nil {
		return err
	}
	gen, err := h.accounts.EnsureAdmin(h.cfg.AdminPassword)
	if err != nil {
		return err
	}
	if gen != "" {
		// Shown once, like the depot's: the journal is where an operator
		// looks for it.
		h.cfg.Log.Warn("hq: created user admin with a generated password; change it", "password", gen)
	}
	return h.accounts.Reload() // another instance may have made admin meanwhile
}

// watchUsers keeps this instance's idea of who may sign in in step with
// the bucket: a user added or removed on another instance counts here at
// once.
func (h *HQ) watchUsers(ctx context.Context) {
	for ctx.Err() == nil {
		kv, err := h.js.KeyValue(ctx, Bucket)
		if err == nil {
			var w jetstream.KeyWatcher
			if w, err = kv.Watch(ctx, userPrefix+">", jetstream.UpdatesOnly()); err == nil {
				for range w.Updates() {
					if err := h.accounts.Reload(); err != nil {
						h.cfg.Log.Warn("hq: reload users", "err", err)
					}
				}
				_ = w.Stop()
			}
		}
		if ctx.Err() == nil {
			h.cfg.Log.Debug("hq: user watch ended", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			_ = h.accounts.Reload() // what changed while no one watched
		}
	}
}

// Addr is where the instance serves HTTP.
func (h *HQ) Addr() string { return h.web.Addr() }

// Fleet is the instance's picture (tests).
func (h *HQ) Fleet() *Fleet { return h.fleet }

// Accounts are the shared users (the command line's user add).
func (h *HQ) Accounts() *auth.Accounts { return h.accounts }

// Close stops the instance: HTTP first (streams end and browsers go to
// another instance), then the stream readers and the connection.
func (h *HQ) Close(ctx context.Context) error {
	h.cancel() // first: open streams end, so Shutdown need not wait them out
	err := h.web.Shutdown(ctx)
	h.nc.Close()
	h.wg.Wait()
	return err
}

// Kill drops every connection at once, as a crash would (tests).
func (h *HQ) Kill() {
	h.web.Kill()
	h.cancel()
	h.nc.Close()
	h.wg.Wait()
}

func (h *HQ) ready() error {
	if !h.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if _, ready, _ := h.fleet.Snapshot("\x00"); !ready {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.loadErr != "" {
			return errors.New("loading the fleet: " + h.loadErr)
		}
		return errors.New("loading the fleet from the stream")
	}
	return nil
}

func (h *HQ) health() map[string]any {
	n := map[string]any{"connected": h.nc.IsConnected(), "seq": h.fleet.Seq()}
	if t := h.fleet.newest(); !t.IsZero() {
		n["lastEvent"] = t.UTC()
	}
	h.mu.Lock()
	if h.loadErr != "" {
		n["error"] = h.loadErr
	}
	h.mu.Unlock()
	status := "ok"
	if h.ready() != nil {
		status = "degraded"
	}
	return map[string]any{"status": status, "mode": "hq", "instance": h.cfg.Instance, "version": h.cfg.Version,
		"nats": n, "stream": upstream.StreamName}
}
