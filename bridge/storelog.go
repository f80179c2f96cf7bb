package bridge

import (
	"log/slog"
	"time"
)

// storeLogEvery is how often a failing store is reported while it keeps
// failing.
const storeLogEvery = 10 * time.Second

// storeFailures reports commit failures without a line per commit: on a
// full disk every commit fails, several times a second, for as long as the
// disk stays full. The first failure is logged, then one line per interval
// with the count and the last error, and one when commits work again. Used
// only by the commit loop's goroutine.
type storeFailures struct {
	run      int       // failed commits since the last success
	held     int       // failures not yet reported
	dropped  int       // events dropped since the last report
	lastLine time.Time // when the last line was written
}

func (f *storeFailures) failed(log *slog.Logger, err error, fixes, events, dropped int, now time.Time) {
	f.run++
	f.dropped += dropped
	switch {
	case f.run == 1:
		log.Error("commit failed; events kept for the next commit", "err", err, "fixes", fixes, "events", events, "dropped", f.dropped)
	case now.Sub(f.lastLine) >= storeLogEvery:
		log.Error("commits still failing; events kept for the next commit", "err", err,
			"failed", f.held+1, "in", now.Sub(f.lastLine).Round(time.Second).String(), "failing", f.run, "dropped", f.dropped)
	default:
		f.held++
		return
	}
	f.held, f.dropped, f.lastLine = 0, 0, now
}

func (f *storeFailures) ok(log *slog.Logger) {
	if f.run > 0 {
		log.Warn("commits work again", "failed", f.run)
	}
	*f = storeFailures{}
}
