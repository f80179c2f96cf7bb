package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/chromedp"
)

// BenchmarkPageCPU is the dashboard's cost to the machine that shows it:
// the main thread's busy time in headless Chromium, as a share of one
// core, with the demo depot (30 routes, one fix a second each), from the
// DevTools protocol's Performance.getMetrics (TaskDuration, and its
// script and layout parts) over 20 s.
//
//	go test -run '^$' -bench PageCPU -benchtime 1x ./cmd/depot
func BenchmarkPageCPU(b *testing.B) { pageCPU(b, false) }

// BenchmarkPageCPUDrawer is BenchmarkPageCPU with a route's drawer open,
// its trail growing and follow mode on (docs/workspace.md).
//
//	go test -run '^$' -bench PageCPUDrawer -benchtime 1x ./cmd/depot
func BenchmarkPageCPUDrawer(b *testing.B) { pageCPU(b, true) }

func pageCPU(b *testing.B, drawer bool) {
	a := startApp(b, "", func(c *ServeConfig) { c.CortexURL, c.Demo = "", true })
	ctx := browser(b)
	signIn(b, ctx, a, "ana", anaPassword)
	waitJS(b, ctx, "30 routes", `document.querySelectorAll('#routes tbody tr').length === 30`)
	waitJS(b, ctx, "live", `window.__depot.conn === 'live'`)
	if drawer {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#routes tbody tr:nth-child(3) .codebtn`)),
			chromedp.Click(chromedp.CSS(`#trail-follow`))); err != nil {
			b.Fatal(err)
		}
		waitJS(b, ctx, "the trail read and growing", `(() => { const d = window.__depot.drawer;
			return d.open && d.follow && d.loads === 1 && !d.loading && d.points > 2; })()`)
	}
	metrics := func() map[string]float64 { return pageMetrics(b, ctx) }
	for b.Loop() {
		m0, t0 := metrics(), time.Now()
		ev0, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__depot.events`))
		pans0, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__depot.drawer.pans`))
		time.Sleep(20 * time.Second) // the window measured, not a wait for a condition
		m1, el := metrics(), time.Since(t0).Seconds()
		ev1, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__depot.events`))
		share := func(k string) float64 { return (m1[k] - m0[k]) / el * 100 }
		b.ReportMetric(share("TaskDuration"), "%core")
		b.ReportMetric(share("ScriptDuration"), "%script")
		b.ReportMetric(share("LayoutDuration")+share("RecalcStyleDuration"), "%layout+style")
		b.ReportMetric(share("TaskOtherDuration"), "%other") // paint, compositing, the WebSocket, GC
		b.ReportMetric((ev1-ev0)/el, "events/s")
		if drawer {
			// Follow mode's pans of the map (a pan when the driver leaves
			// the view's inner part, not a move each).
			pans1, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__depot.drawer.pans`))
			b.ReportMetric((pans1-pans0)/el*60, "pans/min")
		}
	}
}

// pageMetrics reads the page's DevTools Performance metrics (TaskDuration
// and its parts, cumulative seconds).
func pageMetrics(b *testing.B, ctx context.Context) map[string]float64 {
	out, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (map[string]float64, error) {
		if _, err := cdp.Call(ctx, t, performance.Enable, performance.EnableParams{}); err != nil {
			return nil, err
		}
		res, err := cdp.Call(ctx, t, performance.GetMetrics, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		m := map[string]float64{}
		for _, x := range res.Metrics {
			m[x.Name] = x.Value
		}
		return m, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkPageCPUReplay is the replay of today (up to 10 hours: from
// midnight, or 10 hours ago if later) of the demo depot's 30 routes, a fix
// a second each, written into the store before the page opens, played at
// 60× for 20 s: the frames drawn a second (requestAnimationFrame frames
// the replay drew), the frames that waited for history, and the page's
// main thread as BenchmarkPageCPU measures it (docs/workspace.md, Replay).
//
//	go test -run '^$' -bench PageCPUReplay -benchtime 1x ./cmd/depot
func BenchmarkPageCPUReplay(b *testing.B) {
	a := startApp(b, "", func(c *ServeConfig) { c.CortexURL, c.Demo, c.LogLevel = "", true, "error" })
	now := time.Now()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.Local)
	from := now.Add(-10 * time.Hour).Truncate(time.Second)
	if from.Before(day) {
		from = day
	}
	t0 := time.Now()
	var batch bridge.Batch
	n := 0
	for ts := from; ts.Before(now.Add(-time.Minute)); ts = ts.Add(time.Second) {
		for r := 1; r <= 30; r++ {
			d := fmt.Sprintf("D%d", r)
			lat, lng, _ := a.demo.Position(d, ts)
			batch.Fixes = append(batch.Fixes, bridge.HistoryFix{RouteID: fmt.Sprintf("R%d", r), Fix: bridge.Fix{DriverID: d,
				Lat: lat, Lng: lng, TS: ts.UnixMilli(), Acc: 5, Spd: 8.2, Hdg: 90, Batt: 80}})
		}
		if len(batch.Fixes) >= 30000 {
			if err := a.store.Commit(&batch); err != nil {
				b.Fatal(err)
			}
			n += len(batch.Fixes)
			batch = bridge.Batch{}
		}
	}
	if err := a.store.Commit(&batch); err != nil {
		b.Fatal(err)
	}
	n += len(batch.Fixes)
	if _, err := a.store.CompactHistory(time.Now()); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d fixes of 30 routes from %s written in %v", n, from.Format("15:04"), time.Since(t0).Round(time.Millisecond))

	ctx := browser(b)
	signIn(b, ctx, a, "ana", anaPassword)
	waitJS(b, ctx, "30 routes", `document.querySelectorAll('#routes tbody tr').length === 30`)
	waitJS(b, ctx, "live", `window.__depot.conn === 'live'`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Replay all routes"]`))); err != nil {
		b.Fatal(err)
	}
	waitJSFor(b, ctx, 60*time.Second, "the replay at its first fix", `(() => { const r = window.__depot.replay;
		return r.open && r.routes === 30 && r.first !== null && r.ready && r.markers === 30; })()`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Play"]`))); err != nil {
		b.Fatal(err)
	}
	waitJS(b, ctx, "playing", `window.__depot.replay.playing && window.__depot.replay.speed === 60`)
	type rs struct{ Frames, Stalls, T, Requests float64 }
	read := func() rs {
		r, err := chromedp.Run(ctx, chromedp.Evaluate[rs](`(() => { const r = window.__depot.replay;
			return {Frames: r.frames, Stalls: r.stalls, T: r.drawnT, Requests: r.requests}; })()`))
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	for b.Loop() {
		m0, r0, t0 := pageMetrics(b, ctx), read(), time.Now()
		time.Sleep(20 * time.Second) // the window measured, not a wait for a condition
		m1, r1, el := pageMetrics(b, ctx), read(), time.Since(t0).Seconds()
		share := func(k string) float64 { return (m1[k] - m0[k]) / el * 100 }
		b.ReportMetric((r1.Frames-r0.Frames)/el, "frames/s")
		b.ReportMetric(r1.Stalls-r0.Stalls, "stalls")
		b.ReportMetric((r1.T-r0.T)/1000/el, "replay-s/s")
		b.ReportMetric(r1.Requests-r0.Requests, "requests")
		b.ReportMetric(share("TaskDuration"), "%core")
		b.ReportMetric(share("ScriptDuration"), "%script")
		b.ReportMetric(share("LayoutDuration")+share("RecalcStyleDuration"), "%layout+style")
		b.ReportMetric(share("TaskOtherDuration"), "%other")
	}
	if r := jsNumB(b, ctx, `window.__depot.replay.playing ? 1 : 0`); r != 1 {
		b.Fatalf("the replay stopped before the end of the measure")
	}
}

func jsNumB(b *testing.B, ctx context.Context, expr string) float64 {
	n, err := chromedp.Run(ctx, chromedp.Evaluate[float64](expr))
	if err != nil {
		b.Fatal(err)
	}
	return n
}
