// Package hq is `depot hq`: a stateless web server over the fleet's NATS
// JetStream stream (docs/fleet.md). Each instance builds the picture of
// every depot in memory from the stream, serves the fleet page, and
// streams events to browsers over SSE with id = the stream sequence, which
// all instances share: a browser whose instance dies resumes on any other
// with no gap and no duplicate. Users and the token signing key live in a
// JetStream key-value bucket, so instances share nothing but the cluster.
package hq

import (
	"bytes"
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
	URLs  string // nats://h1:4222,nats://h2:4222
	Creds string // NATS credentials file; optional
	CA    string // CA of the servers' TLS certificates; optional
	// Replicas of the bucket when this instance creates it; when zero, as
	// many as the DEPOTS stream has (the fleet's own choice), else 1.
	Replicas int
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

	streamCheck time.Duration // tests: how often the stream is checked
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
	key     []byte // the signing key in use
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
	go func() { defer h.wg.Done(); h.watchBucket(h.ctx) }()
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
		if kv, err = openBucket(kctx, h.js, h.replicas(kctx)); err == nil {
			key, err = signingKey(kctx, kv, nil)
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
	h.key = key
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

// replicas is how many the bucket gets when this instance makes it.
func (h *HQ) replicas(ctx context.Context) int {
	if h.cfg.Replicas > 0 {
		return h.cfg.Replicas
	}
	if s, err := h.js.Stream(ctx, upstream.StreamName); err == nil {
		return max(1, s.CachedInfo().Config.Replicas)
	}
	return 1
}

// watchBucket keeps this instance in step with the bucket: users changed
// on another instance count here at once; a signing key replaced there
// (the bucket made again) is taken, and one gone is put back from this
// instance's, so that every instance signs with one key.
func (h *HQ) watchBucket(ctx context.Context) {
	for ctx.Err() == nil {
		err := h.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		h.cfg.Log.Debug("hq: bucket watch ended", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// bucketCheck is how often an instance looks that the bucket is still
// there (a watch on a deleted bucket says nothing).
const bucketCheck = 10 * time.Second

func (h *HQ) watchOnce(ctx context.Context) error {
	kctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	kv, err := openBucket(kctx, h.js, h.replicas(kctx))
	if err == nil {
		err = h.restoreKey(kctx, kv)
	}
	cancel()
	if err != nil {
		return err
	}
	// What changed while no one watched; a bucket made again has no
	// user: admin as at a first start.
	if gen, err := h.accounts.EnsureAdmin(h.cfg.AdminPassword); err != nil {
		return err
	} else if gen != "" {
		h.cfg.Log.Warn("hq: the bucket had no user: created admin with a generated password; change it", "password", gen)
	}
	if err := h.accounts.Reload(); err != nil {
		return err
	}
	w, err := kv.WatchFiltered(ctx, []string{usersKey, keyName}, jetstream.UpdatesOnly())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	check := time.NewTicker(bucketCheck)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-check.C:
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := h.js.KeyValue(cctx, Bucket)
			cancel()
			if errors.Is(err, jetstream.ErrBucketNotFound) {
				return err
			}
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			if e == nil {
				continue
			}
			switch {
			case e.Key() == usersKey:
				if err := h.accounts.Reload(); err != nil {
					h.cfg.Log.Warn("hq: reload users", "err", err)
				}
			case e.Operation() == jetstream.KeyValuePut:
				h.takeKey(e.Value())
			default: // deleted or purged: ours goes back
				rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				err := h.restoreKey(rctx, kv)
				cancel()
				if err != nil {
					return err
				}
			}
		}
	}
}

// restoreKey makes the bucket's signing key this instance's when it has
// none, and takes the bucket's otherwise.
func (h *HQ) restoreKey(ctx context.Context, kv jetstream.KeyValue) error {
	h.mu.Lock()
	mine := h.key
	h.mu.Unlock()
	k, err := signingKey(ctx, kv, mine)
	if err != nil {
		return err
	}
	h.takeKey(k)
	return nil
}

func (h *HQ) takeKey(k []byte) {
	h.mu.Lock()
	same := bytes.Equal(k, h.key)
	h.mu.Unlock()
	if same {
		return
	}
	if err := h.accounts.SetKey(k); err != nil {
		h.cfg.Log.Warn("hq: the bucket's signing key is unusable; keeping this instance's", "err", err)
		return
	}
	h.mu.Lock()
	h.key = append([]byte(nil), k...)
	h.mu.Unlock()
	h.cfg.Log.Warn("hq: the signing key in the bucket changed: tokens signed before are void")
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
