package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// RouteSource is the route-data feed: one call returns the current plan and
// progress of every route.
type RouteSource interface {
	Fetch(ctx context.Context) ([]RouteSnapshot, error)
	String() string
}

// Limits on one feed fetch.
const (
	FeedTimeout = 10 * time.Second
	// MaxFeedRoutes bounds one feed document (a depot has 25–35 routes;
	// the benchmark's feeds have one per simulated handheld).
	MaxFeedRoutes = 5000
)

// ErrFeed wraps every feed failure: unreachable, slow, or malformed.
var ErrFeed = errors.New("route feed")

// ParseSnapshots decodes and checks a feed document (docs/design.md §2). It
// refuses the whole document when any entry is invalid, so a half-broken
// feed never replaces a good state.
func ParseSnapshots(data []byte) ([]RouteSnapshot, error) {
	var snaps []RouteSnapshot
	if err := json.Unmarshal(data, &snaps); err != nil {
		return nil, fmt.Errorf("%w: malformed JSON: %v", ErrFeed, err)
	}
	if len(snaps) > MaxFeedRoutes {
		return nil, fmt.Errorf("%w: %d routes, limit %d", ErrFeed, len(snaps), MaxFeedRoutes)
	}
	seen := make(map[string]bool, len(snaps))
	for i, s := range snaps {
		bad := func(what string) error {
			return fmt.Errorf("%w: route %d (%q): %s", ErrFeed, i, s.RouteID, what)
		}
		switch {
		case !ValidID(s.RouteID):
			return nil, bad("invalid routeId")
		case seen[s.RouteID]:
			return nil, bad("duplicate routeId")
		case s.DriverID != "" && !ValidID(s.DriverID):
			return nil, bad("invalid driverId")
		case s.TotalStops < 0 || s.CompletedStops < 0 || s.CompletedStops > s.TotalStops:
			return nil, bad("stops out of range")
		case s.TotalPackages < 0 || s.CompletedPackages < 0 || s.CompletedPackages > s.TotalPackages:
			return nil, bad("packages out of range")
		case s.BehindSchedule < 0 || s.BehindSchedule > s.TotalStops:
			return nil, bad("behindSchedule out of range")
		case s.CurrentLat < -90 || s.CurrentLat > 90 || s.CurrentLng < -180 || s.CurrentLng > 180:
			return nil, bad("position out of range")
		case len(s.RouteCode) > 64 || len(s.DriverName) > 128 || len(s.PerformanceTier) > 32:
			return nil, bad("text field too long")
		}
		seen[s.RouteID] = true
	}
	return snaps, nil
}

// Sync polls src every interval until ctx ends, applying each good cycle to
// the depot and recording the feed's health. The first cycle runs one
// interval from now (run SyncOnce before for one at once). A failed cycle
// keeps the last good state; the next cycle retries.
func (d *Depot) Sync(ctx context.Context, src RouteSource, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.SyncOnce(ctx, src)
	}
}

// SyncOnce runs one feed cycle.
func (d *Depot) SyncOnce(ctx context.Context, src RouteSource) error {
	h := d.Feed()
	h.Source = src.String()
	h.LastAttempt = d.Now().UTC()
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, FeedTimeout)
	snaps, err := src.Fetch(fctx)
	cancel()
	if err == nil {
		_, err = d.ApplySnapshots(snaps)
	}
	if d.Metrics != nil {
		d.Metrics.FeedCycle(time.Since(start), err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		if h.OK || h.Error != err.Error() {
			d.Log.Warn("route feed cycle failed; keeping last good state", "source", h.Source, "err", err)
		}
		h.OK, h.Error = false, err.Error()
	} else {
		if !h.OK && h.Error != "" {
			d.Log.Info("route feed recovered", "source", h.Source)
		}
		h.OK, h.Error, h.LastSuccess, h.Routes = true, "", h.LastAttempt, len(snaps)
	}
	d.SetFeedHealth(h)
	return err
}
