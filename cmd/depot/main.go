// Command depot is Depot Command Central: one binary with the MQTT broker,
// the store, the web server and the dashboard of a delivery depot.
//
//	depot [serve] [flags]   run the appliance (the default)
//	depot hq [flags]        the fleet's web server over NATS JetStream
//	depot sim [flags]       simulated handhelds publishing GPS to a running depot
//	depot user add|list     manage dispatchers and admins of a running depot
//	depot device add|revoke|list  manage handheld credentials of a running depot
//	depot bench [feed]      load-test a running depot
//	depot backup            back up a running depot now
//	depot restore           restore a stopped depot's store from a backup
//	depot doctor [flags]    check the box and the configuration, and say what to fix
//	depot env-file          print /etc/default/depot: every serve setting
//	depot version           print the version
//
// Every flag also reads the environment variable DEPOT_<FLAG_NAME>, e.g.
// --http-addr from DEPOT_HTTP_ADDR.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/depotcc/depot/internal/gcpace"
)

// Version is set at build time: -ldflags "-X main.Version=…".
var Version = "dev"

// testHooks, when set, prepares the Main of `depot serve` for a test that
// runs the binary. Only a build with -tags depothooks sets it (hooks.go);
// the shipped binary has none.
var testHooks func(*Main)

const usage = `Depot Command Central — live routes and drivers for a delivery depot.

Usage:
  depot [serve] [flags]   run the appliance (default)
  depot hq [flags]        the fleet's web server: every depot live, over the
                          NATS JetStream cluster the depots forward to
  depot sim [flags]       simulated handhelds publishing GPS to a running depot
  depot user add|list     manage dispatchers and admins of a running depot
  depot device add|revoke|list
                          manage handheld credentials of a running depot
  depot bench [feed]      load-test a running depot: fix → dashboard latency
  depot backup            back up a running depot now (into <data>/backups)
  depot restore           with the depot stopped: restore the newest backup
  depot doctor [flags]    check the box (clock, disk, certificate, ports, feed,
                          upstream, push, backups) with the serve flags, and
                          say what to fix; exit 0 ok, 1 needs a person, 2 usage
  depot env-file          print /etc/default/depot: every setting of
                          "depot serve", commented, with help and default
  depot version           print the version

Run "depot serve -h", "depot doctor -h", "depot hq -h", "depot sim -h",
"depot user", "depot device" for the flags of each. Every flag can also be
set with the environment variable DEPOT_<FLAG_NAME> (e.g. DEPOT_HTTP_ADDR
for --http-addr); a flag on the command line wins. The appliance paces its
Go collector by its allocation rate (fewer cycles under load, up to a 256 MiB
heap; a tighter heap when quiet); GOGC or GOMEMLIMIT turns that off.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if paced(os.Args[1:]) {
		if gcpace.Enabled() {
			c := gcpace.Config{Cap: gcpace.DefaultCap()}
			paceNote = []any{"paced", true, "cap_mib", c.Cap >> 20}
			go gcpace.Run(ctx, c)
		} else {
			paceNote = []any{"paced", false, "why", "GOGC or GOMEMLIMIT is set"}
		}
	}
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		var code exitCode
		if errors.As(err, &code) {
			os.Exit(int(code)) // the command said why
		}
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "depot:", err)
		}
		os.Exit(2)
	}
}

// paceNote is what `depot serve` logs at start about the collector's
// pacing (nil where main did not decide it: a test's in-process run).
var paceNote []any

// paced reports whether a command is one whose collector gcpace paces:
// the appliance (serve, also the command when none is named) and the
// bench's load generator, whose own GC would otherwise be more of the
// machine it shares with the appliance it measures. Not the bare broker
// of --baseline: it is measured as a bare broker runs.
func paced(args []string) bool {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") || args[0] == "serve" {
		return true
	}
	return args[0] == "bench" && (len(args) == 1 || args[1] != "broker" && args[1] != "feed")
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		m := NewMain(stderr)
		if err := m.ParseFlags(args); err != nil {
			return err
		}
		if testHooks != nil {
			testHooks(m)
		}
		if err := m.Run(ctx); err != nil {
			m.Close()
			return err
		}
		<-ctx.Done()
		m.Log.Info("shutting down")
		return m.Close()
	case "hq":
		return runHQ(ctx, args, stderr)
	case "sim":
		return runSim(ctx, args, stderr)
	case "user":
		return runUser(ctx, args, stdin, stdout, stderr)
	case "device":
		return runDevice(ctx, args, stdout, stderr)
	case "backup":
		return runBackup(ctx, args, stdout, stderr)
	case "bench":
		return runBench(ctx, args, stdout, stderr)
	case "restore":
		return runRestore(args, stdout, stderr)
	case "doctor":
		return runDoctor(ctx, args, stdout, stderr)
	case "env-file":
		return runEnvFile(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "depot", Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// envFlags sets every flag of fs not given on the command line from
// DEPOT_<FLAG_NAME>. It runs after fs.Parse so the command line wins.
func envFlags(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		key := envKey(f.Name)
		if v, ok := os.LookupEnv(key); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", key, v, e)
			}
		}
	})
	return err
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
