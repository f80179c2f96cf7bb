package main

import (
	"context"
	"testing"
	"time"

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
	metrics := func() map[string]float64 {
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
	for b.Loop() {
		m0, t0 := metrics(), time.Now()
		ev0, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__depot.events`))
		time.Sleep(20 * time.Second) // the window measured, not a wait for a condition
		m1, el := metrics(), time.Since(t0).Seconds()
		ev1, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__depot.events`))
		share := func(k string) float64 { return (m1[k] - m0[k]) / el * 100 }
		b.ReportMetric(share("TaskDuration"), "%core")
		b.ReportMetric(share("ScriptDuration"), "%script")
		b.ReportMetric(share("LayoutDuration")+share("RecalcStyleDuration"), "%layout+style")
		b.ReportMetric(share("TaskOtherDuration"), "%other") // paint, compositing, the WebSocket, GC
		b.ReportMetric((ev1-ev0)/el, "events/s")
	}
}
