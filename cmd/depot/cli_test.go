package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/depotcc/depot/ui/setup"
)

func TestAdminCommands(t *testing.T) {
	a := startApp(t, "", nil)
	t.Setenv("DEPOT_ADMIN_PASSWORD", adminPassword)
	ctx := context.Background()
	cli := func(stdin string, args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, args, strings.NewReader(stdin), &out, &errb)
		return out.String(), err
	}
	out, err := cli("", "device", "add", "--http", a.HTTPAddr(), "--driver", "D5", "--name", "van 5", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var dev struct {
		DriverID, Token, MqttClientID string
		Setup                         struct{ DriverApp string }
	}
	if json.Unmarshal([]byte(out), &dev); dev.Token == "" || dev.MqttClientID != "drv-D5" || !strings.Contains(dev.Setup.DriverApp, "#pair=") || strings.Contains(dev.Setup.DriverApp, dev.Token) {
		t.Fatalf("device add printed %s", out)
	}
	if _, code, _ := mqttConnect(a.MQTTAddr(), "drv-D5", "D5", dev.Token); code != 0 {
		t.Fatalf("issued credential refused: 0x%02x", code)
	}
	if out, err := cli("", "device", "list", "--http", a.HTTPAddr()); err != nil || !strings.Contains(out, "van 5") || strings.Contains(out, dev.Token) {
		t.Fatalf("device list: %v %s", err, out)
	}
	if _, err := cli("", "device", "revoke", "--http", a.HTTPAddr(), "--driver", "D5"); err != nil {
		t.Fatal(err)
	}
	if _, code, _ := mqttConnect(a.MQTTAddr(), "drv-D5", "D5", dev.Token); code != 0x86 {
		t.Fatalf("revoked credential: 0x%02x", code)
	}
	if _, err := cli("cy-secret-99\n", "user", "add", "--http", a.HTTPAddr(), "--username", "cy"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.accounts.Login("cy", "cy-secret-99"); err != nil {
		t.Fatalf("new dispatcher cannot log in: %v", err)
	}
	if _, err := cli("x\n", "user", "add", "--http", a.HTTPAddr(), "--username", "dee"); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("short password: %v", err)
	}
	t.Setenv("DEPOT_ADMIN_PASSWORD", "wrong-password")
	if _, err := cli("", "device", "list", "--http", a.HTTPAddr()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong admin password: %v", err)
	}
	for _, args := range [][]string{{"device"}, {"device", "fly"}, {"user", "fly"}, {"nope"}} {
		if _, err := cli("", args...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestSimCommand(t *testing.T) {
	a := startApp(t, "", nil)
	t.Setenv("DEPOT_ADMIN_PASSWORD", adminPassword)
	var errb bytes.Buffer
	err := run(context.Background(), []string{"sim", "--mqtt", a.MQTTAddr(), "--http", a.HTTPAddr(),
		"--drivers", "3", "--rate", "10", "--duration", "2s"}, nil, &bytes.Buffer{}, &errb)
	if err != nil {
		t.Fatalf("sim: %v\n%s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "sim finished") || !strings.Contains(errb.String(), "failed=0") {
		t.Fatalf("sim log: %s", errb.String())
	}
	checkFor(t, 2*time.Second, func() error {
		if n := a.depot.Stats.FixesAccepted.Load(); n < 15 {
			return fmt.Errorf("only %d fixes accepted", n)
		}
		return nil
	})
}

// TestDeviceAddSetups: depot device add prints the token and each set-up
// on its own labelled line, draws the asked QR code in the terminal, and
// writes it as PNG or SVG, from the one answer of the depot.
func TestDeviceAddSetups(t *testing.T) {
	a := startApp(t, "", nil)
	t.Setenv("DEPOT_ADMIN_PASSWORD", adminPassword)
	cli := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"device", "add", "--http", a.HTTPAddr()}, args...), strings.NewReader(""), &out, &errb)
		return out.String(), err
	}
	out, err := cli("--driver", "D6", "--qr", "traccar")
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && !strings.Contains(k, "QR code") {
			labels[k] = strings.TrimSpace(v)
		}
	}
	tok, base := labels["token (shown once)"], "http://"+a.HTTPAddr()
	for label, want := range map[string]string{
		"driver":               "D6",
		"MQTT client id":       "drv-D6",
		"Traccar server URL":   base + "/api/v1/osmand/" + tok,
		"Traccar identifier":   "D6",
		"Traccar (QR scanner)": base + "/api/v1/osmand/" + tok + "?id=D6",
	} {
		if tok == "" || labels[label] != want {
			t.Errorf("%s: %q, want %q", label, labels[label], want)
		}
	}
	// The driver app's link carries a one-time pairing code, never the token.
	if l := labels["driver app"]; !strings.HasPrefix(l, base+"/driver/#pair=") || strings.Contains(l, tok) {
		t.Errorf("driver app: %q", l)
	}
	for _, label := range []string{"OwnTracks (MQTT)", "OwnTracks (HTTP)"} {
		raw, err := setup.DecodeInlineLink(labels[label])
		if err != nil || !strings.Contains(string(raw), `"password":"`+tok+`"`) {
			t.Errorf("%s: %q: %v %s", label, labels[label], err, raw)
		}
	}
	if _, code, _ := mqttConnect(a.MQTTAddr(), "drv-D6", "D6", tok); code != 0 {
		t.Fatalf("printed credential refused: 0x%02x", code)
	}
	if !strings.Contains(out, "note: these links name "+a.HTTPAddr()+", which no phone reaches") {
		t.Errorf("no note that 127.0.0.1 is no address for a phone:\n%s", out)
	}
	if !strings.Contains(out, "traccar QR code") || !strings.Contains(out, "widen the terminal") || !strings.Contains(out, "█") {
		t.Fatalf("no QR code in the terminal:\n%s", out)
	}

	dir := t.TempDir()
	// A file already there with a looser mode does not keep it.
	if err := os.WriteFile(filepath.Join(dir, "d.png"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ args []string }{
		{[]string{"--qr-file", filepath.Join(dir, "d.png")}},
		{[]string{"--qr", "owntracks", "--qr-file", filepath.Join(dir, "o.SVG")}},
	} {
		out, err := cli(append([]string{"--driver", "D6"}, f.args...)...)
		if err != nil || !strings.Contains(out, "Wrote the") || strings.Contains(out, "█") {
			t.Fatalf("%v: %v\n%s", f.args, err, out)
		}
	}
	p, err := os.ReadFile(filepath.Join(dir, "d.png"))
	if err != nil {
		t.Fatal(err)
	}
	if img, err := png.Decode(bytes.NewReader(p)); err != nil || img.Bounds().Dx() != img.Bounds().Dy() {
		t.Fatalf("PNG: %v", err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "o.SVG"))
	var root struct{ XMLName xml.Name }
	if err != nil || xml.Unmarshal(svg, &root) != nil || root.XMLName.Local != "svg" {
		t.Fatalf("SVG: %v %.100s", err, svg)
	}
	for _, name := range []string{"d.png", "o.SVG"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v: the file holds a credential", name, fi.Mode(), err)
		}
	}
	if _, err := cli("--driver", "D6", "--qr", "pager"); err == nil || !strings.Contains(err.Error(), "--qr") {
		t.Fatalf("--qr pager: %v", err)
	}
}

// TestPaced: the collector is paced for the appliance and the bench's
// generator, not for the bare baseline broker or the other commands (the
// cap is gcpace's TestCapFor).
func TestPaced(t *testing.T) {
	for args, want := range map[string]bool{
		"": true, "serve": true, "--http-addr :8080": true, "bench": true, "bench --drivers 10": true,
		"bench broker": false, "bench feed --drivers 5": false, "doctor": false, "backup": false, "hq": false,
	} {
		if got := paced(strings.Fields(args)); got != want {
			t.Errorf("paced(%q) = %v, want %v", args, got, want)
		}
	}
}
