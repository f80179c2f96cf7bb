// Package natstest runs real NATS JetStream servers in the test's own
// process, on 127.0.0.1 ports, for the tests of the fleet (the forwarder,
// depot hq, and the appliance end to end). The appliance itself only
// speaks to NATS as a client; only tests import this.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Start runs a JetStream server with o on 127.0.0.1 (a random port and a
// temporary store unless o says), quiet, until the test ends.
func Start(tb testing.TB, o server.Options) *server.Server {
	tb.Helper()
	o.Host, o.JetStream, o.NoLog, o.NoSigs = "127.0.0.1", true, true, true
	if o.Port == 0 {
		o.Port = -1
	}
	if o.StoreDir == "" {
		o.StoreDir = tb.TempDir()
	}
	s, err := server.NewServer(&o)
	if err != nil {
		tb.Fatal(err)
	}
	go s.Start()
	tb.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(20 * time.Second) {
		tb.Fatal("nats-server not ready")
	}
	return s
}

// Cluster runs n JetStream servers routed into one cluster on 127.0.0.1,
// named n0, n1, …
func Cluster(tb testing.TB, n int) []*server.Server {
	tb.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	var out []*server.Server
	for i, p := range ports {
		out = append(out, Start(tb, server.Options{ServerName: fmt.Sprintf("n%d", i),
			// No advertising: a client keeps to the URLs it was given (a
			// depot behind a proxy must not find its way around it).
			Cluster: server.ClusterOpts{Name: "fleet", Host: "127.0.0.1", Port: p, NoAdvertise: true}, Routes: routes}))
	}
	return out
}

// URLs is the client URLs of servers, comma-separated, as --upstream
// takes them.
func URLs(ss []*server.Server) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s.ClientURL()
	}
	return out
}

// WaitFor polls f every 20 ms until it returns nil, and fails the test
// with f's last error after d.
func WaitFor(tb testing.TB, d time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("after %s: %v", d, err)
}
