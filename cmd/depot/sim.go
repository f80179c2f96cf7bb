package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/bridge/feed"
	"github.com/depotcc/depot/ui/client"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// simConfig drives simulated handhelds.
type simConfig struct {
	MQTT     string      // host:port of MQTT over TCP, or tls://host:port
	TLS      *tls.Config // for tls:// (nil: the system's roots)
	Depot    string
	Drivers  []string
	Tokens   map[string]string // driver id -> device token (its MQTT password)
	Demo     *feed.Demo        // positions of the demo's drivers; others wander round the depot
	Interval time.Duration
	QoS      byte
	Duration time.Duration // 0: until ctx ends
	Log      *slog.Logger
	Stats    *simStats
}

type simStats struct{ sent, acked, failed atomic.Int64 }

func runSim(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("depot sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("mqtt", "localhost:1883", "MQTT address of the depot: host:port, or tls://host:port")
	caFile := fs.String("ca-file", "", "PEM certificate(s) to trust for tls:// and https:// (default: the system's)")
	api := fs.String("http", "localhost:8080", "HTTP address of the depot, to issue the handhelds' credentials")
	admin := fs.String("admin-user", "admin", "admin user that issues the credentials (password: DEPOT_ADMIN_PASSWORD)")
	depot := fs.String("depot", "DEMO1", "depot id")
	n := fs.Int("drivers", 30, "number of handhelds (D1…Dn)")
	rate := fs.Float64("rate", 1, "GPS fixes per second per handheld")
	qos := fs.Int("qos", 1, "QoS of GPS publishes (0 or 1)")
	dur := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envFlags(fs); err != nil {
		return err
	}
	switch {
	case *n < 1 || *n > 100000:
		return fmt.Errorf("--drivers %d: want 1-100000", *n)
	case *rate <= 0 || *rate > 100:
		return fmt.Errorf("--rate %v: want more than 0, at most 100", *rate)
	case *qos != 0 && *qos != 1:
		return fmt.Errorf("--qos %d: want 0 or 1", *qos)
	case !bridge.ValidID(*depot):
		return fmt.Errorf("--depot %q: not a valid id", *depot)
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	drivers := make([]string, *n)
	for i := range drivers {
		drivers[i] = fmt.Sprintf("D%d", i+1)
	}
	pw := os.Getenv("DEPOT_ADMIN_PASSWORD")
	if pw == "" {
		return errors.New("set DEPOT_ADMIN_PASSWORD: sim issues its handhelds' credentials as an admin")
	}
	var tlsCfg *tls.Config
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no PEM certificate", *caFile)
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	cl := client.New(*api)
	if tlsCfg != nil {
		cl.HTTP.Transport = &http.Transport{TLSClientConfig: tlsCfg}
	}
	if err := cl.Login(ctx, *admin, pw); err != nil {
		return fmt.Errorf("log in as %s: %w", *admin, err)
	}
	tokens := make(map[string]string, len(drivers))
	for _, d := range drivers {
		tok, err := cl.DeviceToken(ctx, d, "depot sim")
		if err != nil {
			return fmt.Errorf("issue credential for %s: %w", d, err)
		}
		tokens[d] = tok
	}
	st := &simStats{}
	start := time.Now()
	err = simulate(ctx, simConfig{MQTT: *addr, TLS: tlsCfg, Depot: *depot, Drivers: drivers, Tokens: tokens,
		Demo: feed.NewDemo(start, *n, 1), Interval: time.Duration(float64(time.Second) / *rate),
		QoS: byte(*qos), Duration: *dur, Log: log, Stats: st})
	el := time.Since(start).Seconds()
	log.Info("sim finished", "sent", st.sent.Load(), "acked", st.acked.Load(), "failed", st.failed.Load(),
		"fixes_per_s", math.Round(float64(st.sent.Load())/el))
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// simulate runs one handheld per driver until ctx ends (or Duration passes).
// Each reconnects by itself with capped exponential backoff and jitter.
func simulate(ctx context.Context, c simConfig) error {
	if c.Stats == nil {
		c.Stats = &simStats{}
	}
	if c.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Duration)
		defer cancel()
	}
	raw := c.MQTT
	if !strings.Contains(raw, "://") {
		raw = "mqtt://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "mqtt" && u.Scheme != "tls" && u.Scheme != "mqtts") {
		return fmt.Errorf("mqtt address %q: want host:port, mqtt://host:port or tls://host:port", c.MQTT)
	}
	if u.Scheme == "mqtts" {
		u.Scheme = "tls"
	}
	var wg sync.WaitGroup
	for i, d := range c.Drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runHandheld(ctx, c, u, d, uint64(i))
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func runHandheld(ctx context.Context, c simConfig, u *url.URL, driver string, seed uint64) {
	// A refused credential will not get better by retrying.
	ctx, cancelRefused := context.WithCancel(ctx)
	defer cancelRefused()
	// The connection outlives the run's deadline until the handheld's last
	// fix is acknowledged and it disconnects (autopaho closes it with its
	// context).
	connCtx, stopConn := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConn()
	cm, err := autopaho.NewConnection(connCtx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        c.TLS,
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(500*time.Millisecond, 30*time.Second, time.Second, 2),
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               driver,
		ConnectPassword:               []byte(c.Tokens[driver]),
		ClientConfig:                  paho.ClientConfig{ClientID: "drv-" + driver},
		OnConnectError: func(err error) {
			c.Log.Debug("handheld connect failed", "driver", driver, "err", err)
			var ce *autopaho.ConnackError
			if errors.As(err, &ce) && (ce.ReasonCode == 0x86 || ce.ReasonCode == 0x87) {
				c.Log.Warn("handheld credential refused; giving up", "driver", driver, "reason", ce.ReasonCode)
				cancelRefused()
				stopConn()
			}
		},
	})
	if err != nil {
		c.Log.Error("handheld", "driver", driver, "err", err)
		return
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = cm.Disconnect(dctx)
		cancel()
	}()
	rng := rand.New(rand.NewPCG(seed, 7))
	// Spread the first fixes over one interval so handhelds do not beat in step.
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(rng.Int64N(int64(c.Interval)))):
	}
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	topic := bridge.Topics{Depot: c.Depot}.Driver(driver, bridge.KindGPS)
	lat, lng := feed.DemoLat+rng.NormFloat64()*0.03, feed.DemoLng+rng.NormFloat64()*0.03
	batt := 60 + rng.Float64()*40
	for {
		if err := cm.AwaitConnection(ctx); err != nil {
			return
		}
		now := time.Now()
		if dl, dg, ok := c.Demo.Position(driver, now); ok {
			lat, lng = dl, dg
		} else {
			lat += rng.NormFloat64() * 0.0002
			lng += rng.NormFloat64() * 0.0002
		}
		batt = max(5, batt-0.001)
		payload, _ := json.Marshal(map[string]any{
			"lat": lat, "lng": lng, "ts": now.UnixMilli(), "acc": 5, "spd": 8.3,
			"hdg": rng.IntN(360), "batt": int(batt),
		})
		c.Stats.sent.Add(1)
		// A fix sent before the run ends is waited for, not abandoned (and
		// counted as failed) when the run's time is up mid-flight.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, err := cm.Publish(pctx, &paho.Publish{Topic: topic, QoS: c.QoS, Payload: payload})
		cancel()
		if err != nil {
			c.Stats.failed.Add(1)
			if ctx.Err() == nil {
				c.Log.Debug("publish failed", "driver", driver, "err", err)
			}
		} else {
			c.Stats.acked.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
