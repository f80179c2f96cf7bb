package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
)

// throwAwayCert writes a self-signed certificate for 127.0.0.1 and
// localhost and returns the file paths and a pool that trusts it.
func throwAwayCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "depot test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := throwAwayCert(t)
	a := startApp(t, "", func(c *ServeConfig) {
		c.TLSCert, c.TLSKey = certFile, keyFile
		c.CortexURL, c.Demo, c.DemoRoutes = "", true, 5
	})
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	// HTTPS serves the API; plain HTTP on that port does not.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 5 * time.Second}
	resp, err := hc.Get("https://" + a.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("https healthz: %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + a.HTTPAddr() + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP answered on the TLS port")
	}

	// MQTT over TLS with a device credential.
	tok, err := a.accounts.CreateDevice("D9", "tls test")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", a.MQTTAddr(), tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	c, code, err := mqttHandshake(conn, "drv-D9", "D9", tok)
	if err != nil || code != 0 {
		t.Fatalf("mqtts connect: 0x%02x %v", code, err)
	}
	if code, closed := (&v5session{c}).publish("depot/DEMO1/drivers/D9/gps", fixJSON(38.6, -121.4, time.Now())); code != 0 || closed {
		t.Fatalf("mqtts publish: 0x%02x %v", code, closed)
	}
	c.Disconnect(&paho.Disconnect{})
	// A client that does not speak TLS gets nothing.
	if _, code, err := mqttConnect(a.MQTTAddr(), "drv-D9", "D9", tok); err == nil && code == 0 {
		t.Fatal("plain MQTT accepted on the TLS listener")
	}

	// MQTT over secure WebSocket, as the dashboard does on https.
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, TLSClientConfig: tlsCfg, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("wss://"+a.HTTPAddr()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	c, code, err = mqttHandshake(&wsNetConn{Conn: ws.UnderlyingConn(), c: ws}, "dash-ana:t", "ana", a.disp)
	if err != nil || code != 0 {
		t.Fatalf("wss connect: 0x%02x %v", code, err)
	}
	c.Disconnect(&paho.Disconnect{})

	// The demo handhelds reach the TLS listener too.
	checkFor(t, 10*time.Second, func() error {
		var h map[string]any
		req, _ := http.NewRequest("GET", "https://"+a.HTTPAddr()+"/healthz", nil)
		req.Header.Set("Authorization", "Bearer "+a.admin) // the counters are for admins
		r, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer r.Body.Close()
		json.NewDecoder(r.Body).Decode(&h)
		if h["fixes"].(map[string]any)["accepted"].(float64) < 5 {
			return errAgain("demo handhelds not publishing over TLS yet")
		}
		return nil
	})
}

type errAgain string

func (e errAgain) Error() string { return string(e) }
