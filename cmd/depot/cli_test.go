package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
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
	out, err := cli("", "device", "add", "--http", a.HTTPAddr(), "--driver", "D5", "--name", "van 5")
	if err != nil {
		t.Fatal(err)
	}
	var dev struct{ DriverID, Token, MqttClientID string }
	if json.Unmarshal([]byte(out), &dev); dev.Token == "" || dev.MqttClientID != "drv-D5" {
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
