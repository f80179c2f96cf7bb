package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
)

// upgradeManifest is what a fixture data directory holds, written beside
// it when it is made: the upgrade test looks for every item of it.
type upgradeManifest struct {
	Release string         `json:"release"` // the commit that made it
	Users   []string       `json:"users"`
	Devices []string       `json:"devices"`
	Routes  []string       `json:"routes"`
	Fixes   map[string]int `json:"fixes"` // per route
	LastSeq uint64         `json:"lastSeq"`
	Offers  []string       `json:"offers"`
	Rescues []string       `json:"rescues"`
}

// TestMakeUpgradeFixture makes the upgrade test's fixture: a data
// directory written by this build, with users, devices, routes, fixes,
// events, an offer and a rescue, as a .tar.gz and its manifest. It runs
// only when asked (DEPOT_MAKE_FIXTURE=<dir> DEPOT_FIXTURE_RELEASE=<commit>)
// and is kept so that each release that changes the store's format can
// leave one behind.
func TestMakeUpgradeFixture(t *testing.T) {
	out := os.Getenv("DEPOT_MAKE_FIXTURE")
	if out == "" {
		t.Skip("makes a fixture: DEPOT_MAKE_FIXTURE=<dir>")
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "feed.json"), rescueFeed(2))
	a := startApp(t, dir, nil)
	if code := a.request(t, "POST", "/api/v1/users", a.admin, map[string]string{"username": "sam", "password": "sam-secret-1", "role": "dispatcher"}, nil); code != 201 {
		t.Fatalf("add user: %d", code)
	}
	base := time.Now().Add(-30 * time.Minute).UnixMilli()
	for _, d := range []string{"D1", "D2"} {
		c := a.driver(t, d)
		for k := range 20 {
			fix := fmt.Sprintf(`{"lat":%f,"lng":-121.49,"ts":%d,"acc":5,"batt":80}`, 38.58+float64(k)*0.0002, base+int64(k)*10_000)
			if code, err := publish(c, "depot/DEMO1/drivers/"+d+"/gps", 1, []byte(fix)); err != nil || code != 0 {
				t.Fatalf("fix: 0x%02x %v", code, err)
			}
		}
	}
	offer := a.offerVTO(t, "D2", "R2")
	writeFile(t, a.feed, rescueFeed(7)) // R1 falls behind: a rescue
	var rescues []bridge.Rescue
	checkFor(t, 15*time.Second, func() error {
		a.getJSON(t, "/api/v1/rescues", &rescues)
		if len(rescues) == 0 {
			return fmt.Errorf("no rescue yet")
		}
		return nil
	})
	m := upgradeManifest{Release: os.Getenv("DEPOT_FIXTURE_RELEASE"), Fixes: map[string]int{}, Offers: []string{offer}}
	for _, r := range rescues {
		m.Rescues = append(m.Rescues, r.RescueID)
	}
	us, _ := a.accounts.Users()
	for _, u := range us {
		m.Users = append(m.Users, u.Username)
	}
	ds, _ := a.accounts.Devices()
	for _, d := range ds {
		m.Devices = append(m.Devices, d.DriverID)
	}
	for _, r := range a.depot.Routes() {
		m.Routes = append(m.Routes, r.RouteID)
		if n := len(a.history(t, r.RouteID)); n > 0 {
			m.Fixes[r.RouteID] = n
		}
	}
	sort.Strings(m.Users)
	sort.Strings(m.Devices)
	sort.Strings(m.Routes)
	m.LastSeq = a.depot.LastSeq()
	a.Close()

	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(out, "data.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." || strings.HasPrefix(rel, filepath.Join("data", "backups")) {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		r, err := os.Open(p)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.Copy(tw, r)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	writeFile(t, filepath.Join(out, "manifest.json"), string(b)+"\n")
	t.Logf("fixture in %s: %s", out, b)
}
