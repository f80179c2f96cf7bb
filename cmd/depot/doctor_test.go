package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/bridge/upstream"
	"github.com/depotcc/depot/internal/natstest"
	"github.com/depotcc/depot/push"
	"github.com/depotcc/depot/storage"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testDoctor is a doctor over a fresh data directory, with nothing
// listening on its (port 0) addresses and a short timeout; mutate sets
// what a test needs.
func testDoctor(t *testing.T, mutate func(*ServeConfig)) *doctor {
	t.Helper()
	c := DefaultServeConfig()
	c.Data = filepath.Join(t.TempDir(), "data")
	c.HTTPAddr, c.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0"
	if mutate != nil {
		mutate(&c)
	}
	return newDoctor(c, 2*time.Second)
}

// check runs one check as the doctor does (probe, store, timeout).
func (d *doctor) check(t *testing.T, name string) finding {
	t.Helper()
	for _, f := range d.run(context.Background()) {
		if f.Check == name {
			return f
		}
	}
	t.Fatalf("no check %q", name)
	return finding{}
}

func wantStatus(t *testing.T, f finding, want checkStatus, in ...string) {
	t.Helper()
	if f.Status != want {
		t.Errorf("%s: %s %q (fix %q), want %s", f.Check, f.Status, f.Detail, f.Fix, want)
		return
	}
	if want != statusOK && f.Fix == "" {
		t.Errorf("%s: %s without a fix: %q", f.Check, f.Status, f.Detail)
	}
	for _, s := range in {
		if !strings.Contains(f.Detail+"\n"+f.Fix, s) {
			t.Errorf("%s: %q (fix %q) lacks %q", f.Check, f.Detail, f.Fix, s)
		}
	}
}

// makeStore writes a stopped depot's store with latest fixes and events.
func makeStore(t *testing.T, data string, b *bridge.Batch) {
	t.Helper()
	db, err := storage.Open(dbDir(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Commit(b); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func eventAt(seq uint64, at time.Time) bridge.Event {
	return bridge.Event{Seq: seq, Raw: fmt.Appendf(nil, `{"seq":%d,"timestamp":%q}`, seq, at.Format(time.RFC3339Nano))}
}

// TestDoctorConfig: valid flags are ok; one serve would refuse is a FAIL
// naming it; a usage error is not a finding but an error (exit 2), and
// exit 1 comes with a FAIL, or with a warning under --strict.
func TestDoctorConfig(t *testing.T) {
	wantStatus(t, testDoctor(t, nil).check(t, "config"), statusOK)
	wantStatus(t, testDoctor(t, func(c *ServeConfig) { c.Depot = "a/b" }).check(t, "config"), statusFail, "--depot")

	var out bytes.Buffer
	dir := t.TempDir()
	base := []string{"doctor", "--data", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0",
		"--no-webpush", "--offline", "--check-timeout", "2s"}
	if err := run(context.Background(), []string{"doctor", "-h"}, nil, &out, &out); !errors.Is(err, flag.ErrHelp) ||
		!strings.Contains(out.String(), "Exit status: 0 all ok") || !strings.Contains(out.String(), "DEPOT_CHECK_TIMEOUT") {
		t.Fatalf("depot doctor -h: %v\n%s", err, out.String())
	}
	out.Reset()
	err := run(context.Background(), append(base, "--bogus"), nil, &out, &out)
	if err == nil || errors.As(err, new(exitCode)) {
		t.Fatalf("unknown flag: %v, want a usage error", err)
	}
	// No feed is a warning: exit 0, and 1 with --strict.
	out.Reset()
	if err := run(context.Background(), base, nil, &out, &out); err != nil {
		t.Fatalf("warnings only: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "warn  feed       no route feed") || !strings.Contains(out.String(), "fix: set --cortex-url") {
		t.Fatalf("output:\n%s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), append(base, "--strict"), nil, &out, &out); !errors.Is(err, exitCode(1)) {
		t.Fatalf("--strict with a warning: %v", err)
	}
	out.Reset()
	t.Setenv("DEPOT_DEPOT", "a/b")
	if err := run(context.Background(), base, nil, &out, &out); !errors.Is(err, exitCode(1)) || !strings.Contains(out.String(), "FAIL  config") {
		t.Fatalf("DEPOT_DEPOT=a/b: %v\n%s", err, out.String())
	}
	out.Reset()
	t.Setenv("DEPOT_CHECK_TIMEOUT", "-1s")
	if err := run(context.Background(), base[:len(base)-2], nil, &out, &out); err == nil || errors.As(err, new(exitCode)) {
		t.Fatalf("DEPOT_CHECK_TIMEOUT=-1s: %v, want a usage error", err)
	}
}

// TestDoctorClock: each source of the clock's synchronisation in turn; a
// source that hangs is cut at the timeout.
func TestDoctorClock(t *testing.T) {
	bin := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(bin, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noKernel := func() (bool, error) { return false, errors.New("no adjtimex") }
	for _, tc := range []struct {
		name     string
		ctl      string
		kernel   func() (bool, error)
		syncFile string
		want     checkStatus
		in       string
	}{
		{"timedatectl yes", script("yes", `echo yes`), noKernel, "", statusOK, "synchronised (NTP"},
		{"timedatectl no", script("no", `echo no`), noKernel, "", statusWarn, "timedatectl set-ntp true"},
		{"kernel synchronised", "", func() (bool, error) { return true, nil }, "", statusOK, "adjtimex"},
		{"kernel unsynchronised", script("broken", `echo "System has not been booted with systemd" >&2; exit 1`),
			func() (bool, error) { return false, nil }, "", statusWarn, "not synchronised"},
		{"timesyncd file", "", noKernel, script("synchronized", ""), statusOK, "synchronized"},
		{"unknown", "", noKernel, filepath.Join(bin, "absent"), statusWarn, "chronyc tracking"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testDoctor(t, nil)
			d.timedatectl, d.adjtimex, d.syncFile = tc.ctl, tc.kernel, tc.syncFile
			wantStatus(t, d.check(t, "clock"), tc.want, tc.in)
		})
	}
	d := testDoctor(t, nil)
	d.timeout = 300 * time.Millisecond
	d.timedatectl = script("hang", "sleep 30")
	began := time.Now()
	wantStatus(t, d.bounded(context.Background(), d.checkClock), statusFail, "no answer within 300ms")
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("a hanging timedatectl held the doctor %s", took)
	}
}

// TestDoctorFixTimes (depot stopped): the drivers' latest stored fixes'
// receipt minus device time; the running depot's /metrics is in
// TestDoctorEndToEnd.
func TestDoctorFixTimes(t *testing.T) {
	now := time.Now()
	stored := func(offsets ...time.Duration) *doctor {
		d := testDoctor(t, nil)
		b := &bridge.Batch{}
		for i, o := range offsets {
			b.Latest = append(b.Latest, bridge.Fix{DriverID: fmt.Sprint("D", i), Lat: 38, Lng: -121, TS: now.Add(-o).UnixMilli(), Recv: now.UnixMilli()})
		}
		makeStore(t, d.c.Data, b)
		return d
	}
	wantStatus(t, testDoctor(t, nil).check(t, "fix-times"), statusOK, "no fixes yet")
	wantStatus(t, stored(time.Second, 2*time.Second, -time.Second).check(t, "fix-times"), statusOK, "1s behind", "median of 3")
	wantStatus(t, stored(90*time.Second, 95*time.Second, time.Second).check(t, "fix-times"), statusWarn, "1m30s behind", "automatic (network) time")
	wantStatus(t, stored(-5*time.Minute, -5*time.Minute, 0).check(t, "fix-times"), statusFail, "5m0s ahead of", "refused")
}

// TestDoctorStore: none yet, a stopped depot's store that opens, and one
// another process holds while no depot answers on --http-addr.
func TestDoctorStore(t *testing.T) {
	d := testDoctor(t, nil)
	wantStatus(t, d.check(t, "store"), statusOK, "no store yet")
	makeStore(t, d.c.Data, &bridge.Batch{Events: []bridge.Event{eventAt(1, time.Now())}})
	wantStatus(t, d.check(t, "store"), statusOK, "1 events")
	db, err := storage.Open(dbDir(d.c.Data), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wantStatus(t, d.check(t, "store"), statusWarn, "another process holds", "--http-addr")
	db.Close()

	// A torn last record (power lost mid-write), as TestRecoverFromTornStore
	// makes one: the store will not open, and the fix is depot restore.
	files, _ := filepath.Glob(filepath.Join(dbDir(d.c.Data), "*.dat"))
	if len(files) == 0 {
		t.Fatal("no data file")
	}
	f := files[len(files)-1]
	b, _ := os.ReadFile(f)
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	for i := end - 10; i < end; i++ {
		b[i] = 0
	}
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// (Opened once per process: nutsdb keeps its lock after refusing a
	// torn store, so the doctor's is the only Open here.)
	if err := os.MkdirAll(backupDir(d.c.Data), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(backupDir(d.c.Data), "depot-20261201-000000.000.tar.gz"), "x")
	wantStatus(t, d.check(t, "store"), statusFail, "damaged", "depot restore --data "+d.c.Data)
}

// TestDoctorDisk: free space against the store's growth to full
// retention, estimated from the event log's span.
func TestDoctorDisk(t *testing.T) {
	const gib = 1 << 30
	disk := func(free int64) func(string) (int64, int64, error) {
		return func(string) (int64, int64, error) { return free, 100 * gib, nil }
	}
	d := testDoctor(t, func(c *ServeConfig) { c.EventRetention = 30 * 24 * time.Hour })
	now := time.Now()
	// Three days of events.
	b := &bridge.Batch{}
	for i := range 73 {
		b.Events = append(b.Events, eventAt(uint64(i+1), now.Add(-72*time.Hour).Add(time.Duration(i)*time.Hour)))
	}
	makeStore(t, d.c.Data, b)
	d.statfs = disk(50 * gib)
	wantStatus(t, d.check(t, "disk"), statusOK, "50.0 GiB free", "/day", "at full retention (720h")

	size, err := storage.DirBytes(dbDir(d.c.Data))
	if err != nil || size == 0 {
		t.Fatal(size, err)
	}
	// The store grows tenfold to full retention (30 days over 3): free
	// space for less than that growth fills the disk.
	d.minFree = 0 // a test store is tiny
	d.statfs = disk(5 * size)
	wantStatus(t, d.check(t, "disk"), statusFail, "the disk fills in about", "--event-retention (now 720h0m0s)")
	d.statfs = disk(9*size + 4*size) // the growth, and not half the store again
	wantStatus(t, d.check(t, "disk"), statusWarn, "little room left")
	d.minFree = defaultMinFree
	d.statfs = disk(50 << 20)
	wantStatus(t, d.check(t, "disk"), statusFail, "at least 100.0 MiB")
	// A young store: no estimate, only the free space.
	young := testDoctor(t, nil)
	young.statfs = disk(50 * gib)
	wantStatus(t, young.check(t, "disk"), statusOK, "too young to estimate")
}

// certFiles writes a self-signed certificate valid over [from, until]
// and its key.
func certFiles(t *testing.T, from, until time.Time) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "depot test"},
		NotBefore: from, NotAfter: until, DNSNames: []string{"depot.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	cert, keyf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyf, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	return cert, keyf
}

// TestDoctorTLS: a certificate's expiry (warn under 30 days, FAIL past
// it), an unreadable one and a key that is not its own.
func TestDoctorTLS(t *testing.T) {
	now := time.Now()
	with := func(cert, key string) *doctor {
		return testDoctor(t, func(c *ServeConfig) { c.TLSCert, c.TLSKey = cert, key })
	}
	wantStatus(t, testDoctor(t, nil).check(t, "tls"), statusOK, "off")
	wantStatus(t, with(certFiles(t, now.Add(-time.Hour), now.Add(90*24*time.Hour))).check(t, "tls"), statusOK, "depot.test expires", "in 89 days")
	wantStatus(t, with(certFiles(t, now.Add(-time.Hour), now.Add(10*24*time.Hour))).check(t, "tls"), statusWarn, "in 9 days", "renew")
	wantStatus(t, with(certFiles(t, now.Add(-90*24*time.Hour), now.Add(-48*time.Hour))).check(t, "tls"), statusFail, "expired 2 days ago")
	cert, _ := certFiles(t, now.Add(-time.Hour), now.Add(90*24*time.Hour))
	_, otherKey := certFiles(t, now.Add(-time.Hour), now.Add(90*24*time.Hour))
	wantStatus(t, with(cert, otherKey).check(t, "tls"), statusFail, "--tls-key must be the private key")
	garbage := filepath.Join(t.TempDir(), "cert.pem")
	writeFile(t, garbage, "not a certificate")
	wantStatus(t, with(garbage, otherKey).check(t, "tls"), statusFail, "no PEM certificate")
	wantStatus(t, with(filepath.Join(t.TempDir(), "absent.pem"), otherKey).check(t, "tls"), statusFail, "no such file")

	// A depot running with TLS is found over https (its certificate, an
	// hour from expiry, is a warning).
	cert, key, _ := throwAwayCert(t)
	a := startApp(t, "", func(c *ServeConfig) { c.TLSCert, c.TLSKey = cert, key })
	d := testDoctor(t, func(c *ServeConfig) {
		c.TLSCert, c.TLSKey, c.Data, c.HTTPAddr, c.MQTTAddr = cert, key, a.Config.Data, a.HTTPAddr(), a.MQTTAddr()
	})
	found := map[string]finding{}
	for _, f := range d.run(context.Background()) {
		found[f.Check] = f
	}
	wantStatus(t, found["tls"], statusWarn, "in 0 days")
	wantStatus(t, found["ports"], statusOK, "held by the running depot")
	wantStatus(t, found["store"], statusOK, "running depot's store is healthy")
}

// TestDoctorPorts: with the depot stopped, a port another program holds
// is a FAIL naming it and how to find the holder; free ones are ok.
func TestDoctorPorts(t *testing.T) {
	wantStatus(t, testDoctor(t, nil).check(t, "ports"), statusOK, "free (the depot is not running)")
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, port, _ := net.SplitHostPort(held.Addr().String())
	d := testDoctor(t, func(c *ServeConfig) { c.MQTTAddr = held.Addr().String() })
	wantStatus(t, d.check(t, "ports"), statusFail, "--mqtt-addr "+held.Addr().String()+" is in use", "ss -ltnp 'sport = :"+port+"'")

	// Another web server on --http-addr, even one with a /healthz, is not
	// a running depot.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"status":"ok"}`) }))
	defer other.Close()
	d = testDoctor(t, func(c *ServeConfig) { c.HTTPAddr = other.Listener.Addr().String() })
	wantStatus(t, d.check(t, "ports"), statusFail, "--http-addr "+other.Listener.Addr().String()+" is in use")
}

// TestDoctorFeed: the route feed read as serve reads it (status, JSON),
// a broken one, one that never answers (cut at the timeout) and none.
func TestDoctorFeed(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/good", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, feedJSON(1, 0)) })
	mux.HandleFunc("/empty", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `[]`) })
	mux.HandleFunc("/html", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `<html>login</html>`) })
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusBadGateway) })
	release := make(chan struct{})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)
	at := func(url string) *doctor { return testDoctor(t, func(c *ServeConfig) { c.CortexURL = url }) }
	wantStatus(t, at(srv.URL+"/good").check(t, "feed"), statusOK, "2 routes")
	wantStatus(t, at(srv.URL+"/empty").check(t, "feed"), statusWarn, "no routes")
	wantStatus(t, at(srv.URL+"/html").check(t, "feed"), statusFail, "--cortex-url")
	wantStatus(t, at(srv.URL+"/down").check(t, "feed"), statusFail, "502")
	hang := at(srv.URL + "/hang")
	hang.timeout = 300 * time.Millisecond
	began := time.Now()
	wantStatus(t, hang.check(t, "feed"), statusFail)
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("a feed that never answers held the doctor %s", took)
	}
	file := filepath.Join(t.TempDir(), "feed.json")
	writeFile(t, file, feedJSON(1, 0))
	wantStatus(t, at("file://"+file).check(t, "feed"), statusOK, "2 routes")
	wantStatus(t, testDoctor(t, nil).check(t, "feed"), statusWarn, "no route feed")
	offline := at(srv.URL + "/down")
	offline.offline = true
	wantStatus(t, offline.check(t, "feed"), statusOK, "--offline")
}

// TestDoctorUpstream: a real JetStream server, without the stream and
// with it; one that does not answer; credentials that do not load.
func TestDoctorUpstream(t *testing.T) {
	ns := natstest.Start(t, server.Options{})
	at := func(url string, mutate ...func(*ServeConfig)) *doctor {
		return testDoctor(t, func(c *ServeConfig) {
			c.Upstream = url
			for _, m := range mutate {
				m(c)
			}
		})
	}
	wantStatus(t, at(ns.ClientURL()).check(t, "upstream"), statusOK, "stream DEPOTS not there yet")
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: upstream.StreamName, Subjects: []string{"depot.>"}}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, at(ns.ClientURL()).check(t, "upstream"), statusOK, "stream DEPOTS, 0 messages, 1 replicas")

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "nats://" + closed.Addr().String()
	closed.Close()
	wantStatus(t, at(dead).check(t, "upstream"), statusFail, "connect", "reaches "+dead)
	wantStatus(t, at(ns.ClientURL(), func(c *ServeConfig) { c.UpstreamCreds = filepath.Join(t.TempDir(), "absent.creds") }).check(t, "upstream"),
		statusFail, "--upstream-creds")
	wantStatus(t, at("http://"+ns.Addr().String()).check(t, "upstream"), statusFail, "nats://host:port")
	wantStatus(t, testDoctor(t, nil).check(t, "upstream"), statusOK, "off")
}

// TestDoctorPush: the web push keys (made at first start, valid,
// damaged) and an FCM service account whose token a fake token server
// (127.0.0.1) grants, or refuses for a key that is not the account's.
func TestDoctorPush(t *testing.T) {
	d := testDoctor(t, nil)
	wantStatus(t, d.check(t, "push"), statusOK, "made at first start")
	if err := os.MkdirAll(d.c.Data, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := push.LoadOrCreateVAPID(d.c.Data); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, d.check(t, "push"), statusOK, "web push keys valid")
	writeFile(t, filepath.Join(d.c.Data, "vapid.json"), `{"publicKey":"x","privateKey":"y"}`)
	wantStatus(t, d.check(t, "push"), statusFail, "vapid", "from a backup")

	f := newFakeFirebase(t)
	dir := t.TempDir()
	fcm := func(path string) *doctor {
		return testDoctor(t, func(c *ServeConfig) { c.NoWebPush, c.FCMCredentials, c.FCMEndpoint = true, path, f.srv.URL+"/v1" })
	}
	wantStatus(t, fcm(f.serviceAccount(t, dir)).check(t, "push"), statusOK, "FCM project depot-test: access token issued")

	// The same account with another key: the token server refuses it.
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	sa, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "depot-test", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "sa@depot-test.iam.gserviceaccount.com", "client_id": "1", "token_uri": f.srv.URL + "/token"})
	wrong := filepath.Join(dir, "wrong.json")
	writeFile(t, wrong, string(sa))
	wantStatus(t, fcm(wrong).check(t, "push"), statusFail, "no access token", "new service-account key")

	bad := filepath.Join(dir, "bad.json")
	writeFile(t, bad, `{"type":"service_account","project_id":"p","private_key":"nope","client_email":"a@b","token_uri":"http://127.0.0.1:1/token"}`)
	wantStatus(t, fcm(bad).check(t, "push"), statusFail, "private_key")
	wantStatus(t, testDoctor(t, func(c *ServeConfig) { c.NoWebPush = true }).check(t, "push"), statusOK, "off")
}

// TestDoctorBackup: the newest backup's age against --backup-interval;
// none with a store is a FAIL that says how to take one.
func TestDoctorBackup(t *testing.T) {
	d := testDoctor(t, nil)
	wantStatus(t, d.check(t, "backup"), statusOK, "no store yet")
	makeStore(t, d.c.Data, &bridge.Batch{})
	wantStatus(t, d.check(t, "backup"), statusFail, "no backup in", "depot backup --http http://127.0.0.1:0")
	aged := func(age time.Duration) {
		t.Helper()
		dir := backupDir(d.c.Data)
		os.RemoveAll(dir)
		os.MkdirAll(dir, 0o700)
		writeFile(t, filepath.Join(dir, "depot-"+time.Now().Add(-age).UTC().Format(backupLayout)+".tar.gz"), "x")
	}
	aged(time.Hour)
	wantStatus(t, d.check(t, "backup"), statusOK, "1h0m0s old")
	aged(40 * time.Hour)
	wantStatus(t, d.check(t, "backup"), statusWarn, "older than --backup-interval (24h0m0s)")
	aged(4 * 24 * time.Hour)
	wantStatus(t, d.check(t, "backup"), statusFail, "over three --backup-interval")
	d.c.BackupInterval = 0
	wantStatus(t, d.check(t, "backup"), statusWarn, "scheduled backups off")
}

// TestDoctorEndToEnd: `depot doctor` against a running depot (in
// process, 127.0.0.1:0) and then against the same depot stopped.
func TestDoctorEndToEnd(t *testing.T) {
	dir := t.TempDir()
	a := startApp(t, dir, func(c *ServeConfig) { c.BackupInterval = 24 * time.Hour }) // with its backup at start
	data := filepath.Join(dir, "data")
	// The start's backup is written off the start's path.
	checkFor(t, 10*time.Second, func() error {
		if n, _ := newestBackup(backupDir(data)); n == "" {
			return errors.New("no backup yet")
		}
		return nil
	})
	// Handheld clocks 90 s behind: the doctor reads it off /metrics.
	drv := a.driver(t, "D1")
	for i := range 3 {
		if code, err := publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6, -121.4, time.Now().Add(-90*time.Second).Add(time.Duration(i)*time.Millisecond))); err != nil || code != 0 {
			t.Fatalf("fix: 0x%02x %v", code, err)
		}
	}
	doctor := func(httpAddr, mqttAddr string) (map[string]finding, string, error) {
		t.Helper()
		var out, errb bytes.Buffer
		err := run(context.Background(), []string{"doctor", "--json", "--data", data, "--http-addr", httpAddr, "--mqtt-addr", mqttAddr,
			"--cortex-url", "file://" + a.feed, "--check-timeout", "3s"}, nil, &out, &errb)
		var got struct {
			OK     bool      `json:"ok"`
			Checks []finding `json:"checks"`
		}
		if jerr := json.Unmarshal(out.Bytes(), &got); jerr != nil {
			t.Fatalf("doctor --json: %v\n%s\n%s", jerr, out.String(), errb.String())
		}
		m := map[string]finding{}
		for _, f := range got.Checks {
			m[f.Check] = f
		}
		if got.OK != (err == nil) {
			t.Errorf("ok %v with error %v", got.OK, err)
		}
		return m, out.String(), err
	}
	httpAddr, mqttAddr := a.HTTPAddr(), a.MQTTAddr()
	live, out, err := doctor(httpAddr, mqttAddr)
	if err != nil {
		t.Fatalf("warnings only, yet %v:\n%s", err, out)
	}
	wantStatus(t, live["config"], statusOK)
	wantStatus(t, live["store"], statusOK, "running depot's store is healthy")
	wantStatus(t, live["ports"], statusOK, "held by the running depot")
	wantStatus(t, live["fix-times"], statusWarn, "1m30s behind", "fixes since the depot started")
	wantStatus(t, live["disk"], statusOK, "free")
	wantStatus(t, live["feed"], statusOK, "2 routes")
	wantStatus(t, live["backup"], statusOK, "newest depot-")
	wantStatus(t, live["push"], statusOK, "web push keys valid")
	if !strings.Contains(out, `"status": "warn"`) {
		t.Errorf("JSON statuses are lower case:\n%s", out)
	}

	a.Close()
	stopped, _, _ := doctor(httpAddr, mqttAddr)
	wantStatus(t, stopped["store"], statusOK, "opens (depot stopped)")
	wantStatus(t, stopped["ports"], statusOK, "free (the depot is not running)")
	wantStatus(t, stopped["fix-times"], statusWarn, "1m30s behind", "stored fixes, depot stopped")
	wantStatus(t, stopped["backup"], statusOK)

	// And the text a person reads.
	var text bytes.Buffer
	_ = run(context.Background(), []string{"doctor", "--data", data, "--http-addr", httpAddr, "--mqtt-addr", mqttAddr,
		"--cortex-url", "file://" + a.feed}, nil, &text, &text)
	for _, want := range []string{"ok    store      opens (depot stopped)", "warn  fix-times  handheld clocks 1m30s behind",
		"                 fix: when most handhelds"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, text.String())
		}
	}
}
