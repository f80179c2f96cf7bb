package main

import (
	"os"
	"path/filepath"
	"time"
)

// boxBackups is how many of the newest backups the admin page lists.
const boxBackups = 10

// box is GET /api/v1/admin/box, the admin page's view of the appliance:
// what /healthz shows an admin, plus the store's size and growth, the
// retention settings and the backups.
func (m *Main) box() map[string]any {
	h := m.health()
	out := map[string]any{
		"depot":       h["depot"],
		"version":     h["version"],
		"uptimeS":     h["uptimeS"],
		"clients":     h["clients"],
		"feed":        h["feed"],
		"upstream":    h["upstream"],
		"push":        h["push"],
		"storeHealth": h["store"],
		"retention": map[string]any{
			"eventsS":  int64(m.Config.EventRetention.Seconds()),
			"historyS": int64(m.Config.HistoryKeep.Seconds()),
		},
	}
	if sum, err := m.store.Inspect(); err == nil {
		st := map[string]any{"bytes": sum.Bytes, "events": sum.Events}
		if !sum.OldestEvent.IsZero() {
			st["oldestEvent"] = sum.OldestEvent.UTC()
			st["newestEvent"] = sum.NewestEvent.UTC()
			// Growth: the store's size over the span of events it holds,
			// once that span is long enough to mean something.
			if span := sum.NewestEvent.Sub(sum.OldestEvent); span >= time.Hour {
				st["bytesPerDay"] = int64(float64(sum.Bytes) / span.Hours() * 24)
			}
		}
		out["store"] = st
	} else {
		out["store"] = map[string]any{"error": err.Error()}
	}
	type backup struct {
		File  string    `json:"file"`
		At    time.Time `json:"at"`
		Bytes int64     `json:"bytes"`
	}
	list := []backup{}
	all, _ := listBackups(backupDir(m.Config.Data))
	for i := len(all) - 1; i >= 0 && len(list) < boxBackups; i-- {
		at, err := backupTime(all[i])
		fi, serr := os.Stat(all[i])
		if err != nil || serr != nil {
			continue
		}
		list = append(list, backup{File: filepath.Base(all[i]), At: at.UTC(), Bytes: fi.Size()})
	}
	out["backups"] = map[string]any{
		"intervalS": int64(m.Config.BackupInterval.Seconds()),
		"keep":      m.Config.BackupKeep,
		"list":      list,
	}
	return out
}
