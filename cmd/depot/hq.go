package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/depotcc/depot/bridge/feed"
	"github.com/depotcc/depot/hq"
	"github.com/depotcc/depot/ui/auth"
)

const hqUsage = `depot hq: the fleet's web server over NATS JetStream (docs/fleet.md).

It keeps nothing on disk: run as many as you like behind any load balancer
(no sticky sessions). Every depot forwards with "depot serve --upstream";
users and the token signing key live in the cluster's key-value bucket
DEPOT_HQ. The very first start creates user admin with the password in
DEPOT_ADMIN_PASSWORD (or a generated one, logged once).

Usage:
  depot hq --upstream nats://h1:4222,nats://h2:4222 [flags]

Flags:
`

// hqFlags parses the flags of depot hq.
func hqFlags(args []string, stderr io.Writer) (hq.Config, string, error) {
	host, _ := os.Hostname()
	c := hq.Config{HTTPAddr: ":8090", Window: 12 * time.Hour, Instance: host, Version: Version,
		Center: [2]float64{feed.DemoLat, feed.DemoLng}}
	level := "info"
	fs := flag.NewFlagSet("hq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URLs, "upstream", "", "NATS servers of the fleet, comma-separated: nats://h1:4222,nats://h2:4222 (required)")
	fs.StringVar(&c.Creds, "upstream-creds", "", "NATS credentials file (.creds); optional")
	fs.StringVar(&c.CA, "upstream-ca", "", "CA certificate (PEM) of the servers' TLS; optional")
	fs.IntVar(&c.Replicas, "upstream-replicas", c.Replicas, "replicas of the DEPOT_HQ bucket when this instance creates it (default: as many as the DEPOTS stream has, else 1)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address of the fleet page and API")
	fs.DurationVar(&c.Window, "hq-window", c.Window, "how far back an instance reads events when it starts (open rescues, offers, presence)")
	fs.StringVar(&c.Instance, "instance", c.Instance, "this instance's name, in health and logs")
	fs.StringVar(&c.MapTiles, "map-tiles", "", "optional map tile URL template ({z}/{x}/{y}); none: a plain offline map")
	fs.StringVar(&level, "log-level", level, "debug, info, warn or error")
	fs.Usage = func() { fmt.Fprint(fs.Output(), hqUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return c, level, err
	}
	if err := envFlags(fs); err != nil {
		return c, level, err
	}
	if fs.NArg() > 0 {
		return c, level, fmt.Errorf("hq: unexpected argument %q", fs.Arg(0))
	}
	if c.URLs == "" {
		fs.Usage()
		return c, level, errors.New("hq: --upstream is required")
	}
	c.AdminPassword = os.Getenv("DEPOT_ADMIN_PASSWORD")
	if c.AdminPassword != "" && len(c.AdminPassword) < auth.MinPasswordLen {
		return c, level, fmt.Errorf("DEPOT_ADMIN_PASSWORD: at least %d characters", auth.MinPasswordLen)
	}
	return c, level, nil
}

// runHQ is depot hq: it serves until ctx ends.
func runHQ(ctx context.Context, args []string, stderr io.Writer) error {
	c, level, err := hqFlags(args, stderr)
	if err != nil {
		return err
	}
	if c.Log, err = newLogger(stderr, level); err != nil {
		return err
	}
	h, err := hq.Start(ctx, c)
	if err != nil {
		return err
	}
	<-ctx.Done()
	c.Log.Info("hq: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.Close(sctx)
}
