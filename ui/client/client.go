// Package client is a Go client of the depot's REST API, for the tools that
// drive a running depot from outside: the admin commands, depot sim and
// the load generator.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client talks to a running depot's REST API, as an admin tool would.
type Client struct {
	Base  string // http://host:port
	Token string // a login token, set by Login
	HTTP  *http.Client
}

// New returns a client of the depot at base ("host:port" or a URL).
func New(base string) *Client {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{Timeout: 15 * time.Second}}
}

// Do sends body as JSON and decodes a 2xx answer into out (when not nil);
// any other answer is an error carrying the depot's reason.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20)) // a big depot's route list is megabytes
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		_ = json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, e.Error)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Login logs in and keeps the token for the next calls.
func (c *Client) Login(ctx context.Context, user, password string) error {
	var out struct{ Token string }
	if err := c.Do(ctx, "POST", "/api/v1/auth/login", map[string]string{"username": user, "password": password}, &out); err != nil {
		return err
	}
	c.Token = out.Token
	return nil
}

// DeviceToken issues (or re-issues) the credential of driverID's handheld.
func (c *Client) DeviceToken(ctx context.Context, driverID, name string) (string, error) {
	var out struct{ Token string }
	err := c.Do(ctx, "POST", "/api/v1/devices", map[string]string{"driverId": driverID, "name": name}, &out)
	return out.Token, err
}
