package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/depotcc/depot/ui/client"
	"github.com/depotcc/depot/ui/setup"
)

// The admin commands talk to the running depot over its API: the data
// directory is locked by the server, and the API is where roles are checked.

func adminClient(ctx context.Context, fs *flag.FlagSet, args []string, stderr io.Writer) (*client.Client, error) {
	api := fs.String("http", "localhost:8080", "HTTP address of the depot (http://… or https://…)")
	user := fs.String("admin-user", "admin", "admin user (password: DEPOT_ADMIN_PASSWORD)")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := envFlags(fs); err != nil {
		return nil, err
	}
	pw := os.Getenv("DEPOT_ADMIN_PASSWORD")
	if pw == "" {
		return nil, errors.New("set DEPOT_ADMIN_PASSWORD to the password of " + *user)
	}
	c := client.New(*api)
	if err := c.Login(ctx, *user, pw); err != nil {
		return nil, fmt.Errorf("log in as %s: %w", *user, err)
	}
	return c, nil
}

func printJSON(w io.Writer, v any) {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	_ = e.Encode(v)
}

const userUsage = `Usage:
  depot user add --username NAME [--role dispatcher|admin]   (password read from stdin)
  depot user list
Flags of every subcommand: --http ADDR --admin-user NAME; DEPOT_ADMIN_PASSWORD is the admin's password.
`

// runUser: depot user add|list.
func runUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, userUsage)
		return errors.New("depot user: add or list?")
	}
	fs := flag.NewFlagSet("depot user "+args[0], flag.ContinueOnError)
	switch args[0] {
	case "add":
		name := fs.String("username", "", "the new user's name")
		role := fs.String("role", "dispatcher", "dispatcher or admin")
		c, err := adminClient(ctx, fs, args[1:], stderr)
		if err != nil {
			return err
		}
		if *name == "" {
			return errors.New("--username is required")
		}
		fmt.Fprintf(stderr, "password for %s: ", *name)
		pw, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && pw == "" {
			return errors.New("no password on stdin")
		}
		var out any
		if err := c.Do(ctx, "POST", "/api/v1/users", map[string]string{
			"username": *name, "password": strings.TrimRight(pw, "\r\n"), "role": *role}, &out); err != nil {
			return err
		}
		printJSON(stdout, out)
		return nil
	case "list":
		c, err := adminClient(ctx, fs, args[1:], stderr)
		if err != nil {
			return err
		}
		var out any
		if err := c.Do(ctx, "GET", "/api/v1/users", nil, &out); err != nil {
			return err
		}
		printJSON(stdout, out)
		return nil
	}
	fmt.Fprint(stderr, userUsage)
	return fmt.Errorf("depot user: unknown subcommand %q", args[0])
}

const deviceUsage = `Usage:
  depot device add --driver ID [--name TEXT] [--qr KIND] [--qr-file PATH] [--json]
      issue a handheld credential: prints its token (shown once) and its set-ups,
      the links that configure the driver app, OwnTracks (MQTT or HTTP) and Traccar Client
      --qr KIND        also draw that set-up's QR code in the terminal (or the file below):
                       driverapp, owntracks, owntracks-http or traccar
      --qr-file PATH   write the QR code of --qr (default driverapp) to PATH:
                       SVG when PATH ends in .svg, PNG otherwise (it holds the credential)
      --json           print the depot's answer as JSON instead
  depot device revoke --driver ID              revoke it; a live session is disconnected
  depot device list
Flags of every subcommand: --http ADDR --admin-user NAME; DEPOT_ADMIN_PASSWORD is the admin's password.
The set-ups' links name the depot's --public-url, or the address given to --http.
`

// runDevice: depot device add|revoke|list.
func runDevice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, deviceUsage)
		return errors.New("depot device: add, revoke or list?")
	}
	fs := flag.NewFlagSet("depot device "+args[0], flag.ContinueOnError)
	var driver, name, qrKind, qrFile *string
	var asJSON *bool
	if args[0] == "add" || args[0] == "revoke" {
		driver = fs.String("driver", "", "driver id")
		if args[0] == "add" {
			name = fs.String("name", "", "a label for the handheld")
			qrKind = fs.String("qr", "", "draw this set-up's QR code in the terminal: "+strings.Join(setup.Kinds, ", "))
			qrFile = fs.String("qr-file", "", "write the QR code of --qr (default driverapp) to this file: SVG if it ends in .svg, else PNG")
			asJSON = fs.Bool("json", false, "print the depot's answer as JSON")
		}
	}
	switch args[0] {
	case "add", "revoke", "list":
	default:
		fmt.Fprint(stderr, deviceUsage)
		return fmt.Errorf("depot device: unknown subcommand %q", args[0])
	}
	c, err := adminClient(ctx, fs, args[1:], stderr)
	if err != nil {
		return err
	}
	if driver != nil && *driver == "" {
		return errors.New("--driver is required")
	}
	if args[0] == "add" {
		return deviceAdd(ctx, c, *driver, *name, *qrKind, *qrFile, *asJSON, stdout)
	}
	var out any
	switch args[0] {
	case "revoke":
		err = c.Do(ctx, "DELETE", "/api/v1/devices/"+*driver, nil, nil)
		out = map[string]string{"revoked": *driver}
	case "list":
		err = c.Do(ctx, "GET", "/api/v1/devices", nil, &out)
	}
	if err != nil {
		return err
	}
	printJSON(stdout, out)
	return nil
}

// deviceAdd issues driver's credential and prints its token and set-ups,
// and the QR code of one of them when asked (drawn here from the answer:
// the depot holds the token only for a while, and one request is enough).
func deviceAdd(ctx context.Context, c *client.Client, driver, name, qrKind, qrFile string, asJSON bool, stdout io.Writer) error {
	if qrFile != "" && qrKind == "" {
		qrKind = setup.KindDriverApp
	}
	if qrKind != "" && !slices.Contains(setup.Kinds, qrKind) {
		return fmt.Errorf("--qr %q: want %s", qrKind, strings.Join(setup.Kinds, ", "))
	}
	var raw json.RawMessage
	if err := c.Do(ctx, "POST", "/api/v1/devices", map[string]string{"driverId": driver, "name": name}, &raw); err != nil {
		return err
	}
	var out struct {
		DriverID     string     `json:"driverId"`
		Token        string     `json:"token"`
		MQTTUsername string     `json:"mqttUsername"`
		MQTTClientID string     `json:"mqttClientId"`
		Setup        *setup.Set `json:"setup"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("the depot's answer: %w", err)
	}
	if asJSON {
		var v any
		_ = json.Unmarshal(raw, &v)
		printJSON(stdout, v)
	} else {
		printDevice(stdout, out.DriverID, out.Token, out.MQTTUsername, out.MQTTClientID, out.Setup)
	}
	if qrKind == "" {
		return nil
	}
	if out.Setup == nil {
		return errors.New("no QR code: the depot's answer has no set-ups (it cannot tell its public address: start it with --public-url)")
	}
	text, err := out.Setup.Text(qrKind)
	if err != nil {
		return err
	}
	if qrFile != "" {
		format := setup.FormatPNG
		if strings.EqualFold(filepath.Ext(qrFile), ".svg") {
			format = setup.FormatSVG
		}
		img, _, err := setup.Image(text, format)
		if err != nil {
			return err
		}
		// 0600: the code holds the driver's credential. Written to a new
		// file and renamed over the path, so an existing file's looser
		// mode, or a symlink at the path, is not kept.
		if err := writePrivate(qrFile, img); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nWrote the %s QR code to %s; it holds the credential: delete it once scanned.\n", qrKind, qrFile)
		return nil
	}
	art, err := setup.Terminal(text)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s QR code (drawn for a dark terminal; if lines wrap, widen the terminal or use --qr-file):\n\n%s", qrKind, art)
	return nil
}

// printDevice prints a new credential and its set-ups, one labelled line
// each.
func printDevice(w io.Writer, driver, token, user, clientID string, set *setup.Set) {
	line := func(label, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-22s %s\n", label+":", v)
		}
	}
	line("driver", driver)
	line("token (shown once)", token)
	line("MQTT username", user)
	line("MQTT client id", clientID)
	if set == nil {
		fmt.Fprintln(w, "set-ups: none (the depot cannot tell its public address from this request: start it with --public-url)")
		return
	}
	line("driver app", set.DriverApp)
	line("OwnTracks (MQTT)", set.OwnTracks)
	line("OwnTracks (HTTP)", set.OwnTracksHTTP)
	line("Traccar server URL", set.Traccar)
	line("Traccar identifier", set.TraccarID)
	line("Traccar (QR scanner)", set.TraccarQR)
	if u, err := url.Parse(set.DriverApp); err == nil && isLoopback(u.Hostname()) {
		fmt.Fprintf(w, "note: these links name %s, which no phone reaches: start the depot with --public-url\n", u.Host)
	} else if err == nil && u.Scheme == "http" {
		fmt.Fprintf(w, "note: these links are plain http: a phone sends its token unencrypted over the network; serve TLS (--tls-cert) or put the depot behind an HTTPS proxy and start it with --public-url https://…\n")
	}
}

// isLoopback reports whether host names this machine only.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// writePrivate writes b to path with mode 0600, whatever was there before.
func writePrivate(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".qr-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
