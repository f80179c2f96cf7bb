package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/loadgen"
)

const benchUsage = `Usage:
  depot bench feed --drivers N [--prefix BD] > feed.json
      a route feed with one route per bench handheld; start the depot with
      --cortex-url file://$PWD/feed.json
  depot bench [flags]
      drive D handhelds at R fixes/s and S dashboards against a running depot
      and measure fix → dashboard latency (admin password: DEPOT_ADMIN_PASSWORD)
  depot bench --baseline [flags]
      the same load, then against a bare mochi broker (no authentication, no
      storage, no domain) run as its own process like the depot, and the ratio
  depot bench broker [--mqtt ADDR] [--ws ADDR]
      run that bare broker alone; prints its addresses, stops at end of input

Example:
  depot bench feed --drivers 35 > feed.json
  DEPOT_ADMIN_PASSWORD=secret-pass depot serve --cortex-url file://$PWD/feed.json --data $(mktemp -d) &
  DEPOT_ADMIN_PASSWORD=secret-pass depot bench --drivers 35 --rate 1 --dashboards 10 --duration 30s --json
`

// runBench is `depot bench`: flags and output around package loadgen.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "feed" {
		return benchFeed(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "broker" {
		return benchBroker(ctx, args[1:], os.Stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("depot bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage+"\nFlags:\n"); fs.PrintDefaults() }
	httpAddr := fs.String("http", "localhost:8080", "HTTP address of the depot")
	mqttAddr := fs.String("mqtt", "localhost:1883", "MQTT TCP address of the depot")
	c := loadgen.Config{}
	fs.IntVar(&c.Drivers, "drivers", 35, "simulated handhelds")
	fs.Float64Var(&c.Rate, "rate", 1, "GPS fixes per second per handheld (0: connect and stay idle, keepalive only)")
	fs.IntVar(&c.Dashboards, "dashboards", 10, "dashboards subscribed over MQTT-over-WebSocket")
	fs.IntVar(&c.QoS, "qos", 1, "QoS of the fixes (0 or 1)")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "how long to publish")
	fs.StringVar(&c.Prefix, "prefix", "BD", "driver ids are <prefix>1…<prefix>N (as in `depot bench feed`)")
	fs.StringVar(&c.Depot, "depot", "DEMO1", "depot id")
	fs.BoolVar(&c.Persistent, "persistent", false, "handhelds keep their MQTT sessions (clean start off), as OwnTracks connects")
	asJSON := fs.Bool("json", false, "print one JSON line per run")
	baseline := fs.Bool("baseline", false, "also run the load against a bare mochi broker in its own process and print the ratio")
	cpuProfile := fs.String("cpuprofile", "", "write the load generator's own CPU profile to this file (it shares the machine)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envFlags(fs); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	// A run that outlives its load by minutes is stuck (one was, once, in
	// a busy hour): it says where, and ends, rather than hold a make
	// target for ever.
	stuck := time.AfterFunc(2*c.Duration+5*time.Minute, func() {
		fmt.Fprintln(stderr, "depot bench: stuck; its goroutines:")
		_ = pprof.Lookup("goroutine").WriteTo(stderr, 1)
		os.Exit(3)
	})
	defer stuck.Stop()
	tgt, err := loadgen.Appliance(ctx, *httpAddr, *mqttAddr, os.Getenv("DEPOT_ADMIN_PASSWORD"), c)
	if err != nil {
		return err
	}
	res, err := loadgen.Run(ctx, tgt, c)
	if err != nil {
		return err
	}
	results := []loadgen.Result{res}
	if *baseline {
		mqttAt, wsAt, stop, err := startBareBroker(stderr)
		if err != nil {
			return err
		}
		bres, err := loadgen.Run(ctx, loadgen.Baseline(mqttAt, wsAt), c)
		stop()
		if err != nil {
			return err
		}
		results = append(results, bres)
	}
	for _, r := range results {
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Fprintln(stdout, string(b))
		} else {
			printBench(stdout, r)
		}
	}
	if len(results) == 2 {
		ratio := loadgen.Ratio(results[0], results[1])
		if *asJSON {
			out, _ := json.Marshal(ratio)
			fmt.Fprintln(stdout, string(out))
		} else {
			fmt.Fprintf(stdout, "appliance / bare broker: throughput %.2f×, deliveries %.2f×, p99 %.2f×\n",
				ratio["throughput_ratio"], ratio["deliveries_ratio"], ratio["p99_ratio"])
		}
	}
	return nil
}

// benchExe is the binary run as the bare broker: this one (tests set the
// built depot, their own binary being the test's).
var benchExe = os.Executable

// startBareBroker runs `depot bench broker` as a child process and reads
// the addresses it took. The child ends when its input closes, so it does
// not outlive a bench that dies.
func startBareBroker(stderr io.Writer) (mqttAt, wsAt string, stop func(), err error) {
	exe, err := benchExe()
	if err != nil {
		return "", "", nil, err
	}
	cmd := exec.Command(exe, "bench", "broker")
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", "", nil, fmt.Errorf("start the bare broker: %w", err)
	}
	stop = func() { in.Close(); _ = cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if _, e := fmt.Sscanf(line, "mqtt=%s ws=%s", &mqttAt, &wsAt); err != nil || e != nil {
		_ = cmd.Process.Kill()
		stop()
		return "", "", nil, fmt.Errorf("the bare broker did not start (it said %q)", strings.TrimSpace(line))
	}
	return mqttAt, wsAt, stop, nil
}

// benchBroker is `depot bench broker`: the bare broker of --baseline.
func benchBroker(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("depot bench broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mqttAddr := fs.String("mqtt", "127.0.0.1:0", "MQTT TCP address")
	wsAddr := fs.String("ws", "127.0.0.1:0", "MQTT over WebSocket address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mqttAt, wsAt, stop, err := loadgen.BareBroker(*mqttAddr, *wsAddr)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(stdout, "mqtt=%s ws=%s\n", mqttAt, wsAt)
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stdin); close(eof) }()
	select {
	case <-ctx.Done():
	case <-eof:
	}
	return nil
}

func printBench(w io.Writer, r loadgen.Result) {
	fmt.Fprintf(w, "%s: %d handhelds × %.3g fixes/s (QoS %d), %d dashboards, %.0fs\n", r.Target, r.Drivers, r.Rate, r.QoS, r.Dashboards, r.DurationS)
	fmt.Fprintf(w, "  fixes/s %.0f  deliveries/s %.0f  sent %d  acked %d  received %d  lost %d\n",
		r.FixesPerS, r.DeliveriesPerS, r.Sent, r.Acked, r.Received, r.Lost)
	fmt.Fprintf(w, "  fix → dashboard: p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms\n", r.P50, r.P95, r.P99, r.Max)
	if r.RSSMB > 0 {
		fmt.Fprintf(w, "  appliance: CPU %.1f%% of one core, RSS %.1f MB\n", r.CPUPct, r.RSSMB)
	}
	if len(r.Slow) > 0 {
		fmt.Fprintf(w, "  over %d ms (second: how many, slowest ms):", loadgen.SlowMS)
		for _, e := range r.Slow {
			fmt.Fprintf(w, " %.0f:%.0f,%.0f", e[0], e[1], e[2])
		}
		fmt.Fprintln(w)
	}
}

// benchFeed is `depot bench feed`: a route feed with one route per bench
// handheld.
func benchFeed(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("depot bench feed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("drivers", 35, "handhelds (and routes)")
	prefix := fs.String("prefix", "BD", "driver id prefix")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > bridge.MaxFeedRoutes {
		return fmt.Errorf("--drivers %d: want 1-%d", *n, bridge.MaxFeedRoutes)
	}
	return json.NewEncoder(stdout).Encode(loadgen.Feed(*n, *prefix))
}
