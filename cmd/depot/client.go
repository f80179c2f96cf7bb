package main

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

// apiClient talks to a running depot's REST API, as an admin tool would.
type apiClient struct {
	base  string // http://host:port
	token string
	http  *http.Client
}

func newAPIClient(base string) *apiClient {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &apiClient{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 15 * time.Second}}
}

func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
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

func (c *apiClient) login(ctx context.Context, user, password string) error {
	var out struct{ Token string }
	if err := c.do(ctx, "POST", "/api/v1/auth/login", map[string]string{"username": user, "password": password}, &out); err != nil {
		return err
	}
	c.token = out.Token
	return nil
}

// deviceToken issues (or re-issues) the credential of driverID's handheld.
func (c *apiClient) deviceToken(ctx context.Context, driverID, name string) (string, error) {
	var out struct{ Token string }
	err := c.do(ctx, "POST", "/api/v1/devices", map[string]string{"driverId": driverID, "name": name}, &out)
	return out.Token, err
}
