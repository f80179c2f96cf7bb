package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/storage"
	"github.com/depotcc/depot/ui/client"
)

// untar unpacks a fixture into dir.
func untar(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("fixture entry %q outside its directory", h.Name)
		}
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o700|0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, tr); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
}

// runOn starts the appliance on an existing data directory, as an upgrade
// does: nothing created, no user or device added.
func runOn(t *testing.T, dir string) (*Main, error) {
	t.Helper()
	m := NewMain(io.Discard)
	m.Config.Data = filepath.Join(dir, "data")
	m.Config.HTTPAddr, m.Config.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0"
	m.Config.CortexURL = "file://" + filepath.Join(dir, "feed.json")
	m.Config.LogLevel = "warn"
	// A fixture grows old: its events and fixes must not be pruned as
	// past retention before they are counted.
	m.Config.EventRetention, m.Config.HistoryKeep = 100*365*24*time.Hour, 100*365*24*time.Hour
	if err := m.Config.validate(); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	t.Cleanup(func() { m.Close() })
	return m, err
}

// TestUpgradeFromFixture: a data directory written by an earlier release
// (testdata/upgrade, made by TestMakeUpgradeFixture at the commit its
// manifest names, before the store recorded its format) opens with this
// build, which records the format, and every user, device, route, fix,
// event, offer and rescue of it is there.
func TestUpgradeFromFixture(t *testing.T) {
	t.Parallel()
	var want upgradeManifest
	b, err := os.ReadFile(filepath.Join("testdata", "upgrade", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	untar(t, filepath.Join("testdata", "upgrade", "data.tar.gz"), dir)
	m, err := runOn(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if f := m.store.FormatVersion(); f != storage.Format {
		t.Fatalf("format %d after the upgrade, want %d", f, storage.Format)
	}
	var users, devices, routes []string
	us, _ := m.accounts.Users()
	for _, u := range us {
		users = append(users, u.Username)
	}
	ds, _ := m.accounts.Devices()
	for _, d := range ds {
		devices = append(devices, d.DriverID)
	}
	for _, r := range m.depot.Routes() {
		routes = append(routes, r.RouteID)
	}
	slices.Sort(users)
	slices.Sort(devices)
	slices.Sort(routes)
	if !slices.Equal(users, want.Users) || !slices.Equal(devices, want.Devices) || !slices.Equal(routes, want.Routes) {
		t.Fatalf("users %v devices %v routes %v; the fixture holds %v %v %v", users, devices, routes, want.Users, want.Devices, want.Routes)
	}
	// The old passwords and the old signing key still work.
	api := client.New(m.HTTPAddr())
	ctx := context.Background()
	if err := api.Login(ctx, "sam", "sam-secret-1"); err != nil {
		t.Fatalf("sam's password after the upgrade: %v", err)
	}
	for route, n := range want.Fixes {
		fixes, err := m.store.History(route, time.Unix(0, 0), time.Now().Add(time.Hour))
		if err != nil || len(fixes) != n {
			t.Fatalf("route %s: %d fixes after the upgrade, the fixture holds %d (%v)", route, len(fixes), n, err)
		}
	}
	evs, err := m.store.EventsAfter(0, int(want.LastSeq)+100)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= want.LastSeq; i++ {
		var env struct {
			Seq uint64 `json:"seq"`
		}
		if i > uint64(len(evs)) || json.Unmarshal(evs[i-1], &env) != nil || env.Seq != i {
			t.Fatalf("event %d of %d missing after the upgrade", i, want.LastSeq)
		}
	}
	if m.depot.LastSeq() < want.LastSeq {
		t.Fatalf("the log goes on from %d, the fixture's ends at %d", m.depot.LastSeq(), want.LastSeq)
	}
	// Offers and rescues as stored (the live lists leave out what is
	// long over, and the fixture ages).
	st, err := m.store.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range want.Offers {
		if !slices.ContainsFunc(st.Offers, func(o bridge.Offer) bool { return o.VTOID == id }) {
			t.Fatalf("offer %s missing after the upgrade", id)
		}
	}
	for _, id := range want.Rescues {
		if !slices.ContainsFunc(st.Rescues, func(r bridge.Rescue) bool { return r.RescueID == id }) {
			t.Fatalf("rescue %s missing after the upgrade", id)
		}
	}
}

// TestStoreFromTheFuture: a store written by a newer depot (a downgrade)
// is refused at start with what to do, and not written to.
func TestStoreFromTheFuture(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := storage.Open(dbDir(filepath.Join(dir, "data")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.MetaPut("format", []byte("99")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	writeFile(t, filepath.Join(dir, "feed.json"), feedJSON(42, 2))
	_, err = runOn(t, dir)
	if err == nil || !errors.Is(err, storage.ErrNewerFormat) || !strings.Contains(err.Error(), "format 99") ||
		!strings.Contains(err.Error(), "Install the depot that wrote it") {
		t.Fatalf("a store from the future: %v", err)
	}
	// Nothing was made in it: no admin, no key.
	if _, err := os.Stat(filepath.Join(dir, "data", "jwt.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused start wrote a signing key: %v", err)
	}
}
