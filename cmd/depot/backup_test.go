package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBackupAtStart: a depot takes a backup at start when it has none or
// the newest is older than --backup-interval (one restarted more often
// than the interval never reached its first scheduled one), and not when
// the newest is recent.
func TestBackupAtStart(t *testing.T) {
	dir := t.TempDir()
	backups := backupDir(filepath.Join(dir, "data"))
	count := func() []string {
		t.Helper()
		all, err := listBackups(backups)
		if err != nil {
			t.Fatal(err)
		}
		return all
	}
	hour := func(c *ServeConfig) { c.BackupInterval = time.Hour }

	// Close waits for the jobs, so the start's backup, when one is due,
	// is written by the time it returns: no waiting on a clock.
	a := startApp(t, dir, hour)
	a.Close()
	if n := len(count()); n != 1 {
		t.Fatalf("%d backups after the first start, want 1", n)
	}

	// Restarted within the interval: no new backup.
	a = startApp(t, dir, hour)
	a.Close()
	if n := len(count()); n != 1 {
		t.Fatalf("%d backups after a restart within the interval, want 1", n)
	}

	// The newest is now two hours old: the next start takes one.
	old := count()[0]
	aged := filepath.Join(backups, "depot-"+time.Now().Add(-2*time.Hour).UTC().Format(backupLayout)+".tar.gz")
	if err := os.Rename(old, aged); err != nil {
		t.Fatal(err)
	}
	if !backupDue(filepath.Join(dir, "data"), time.Hour, time.Now()) {
		t.Fatal("a two-hour-old backup is not due with a one-hour interval")
	}
	a = startApp(t, dir, hour)
	a.Close()
	if n := len(count()); n != 2 {
		t.Fatalf("%d backups after a start past the interval, want 2", n)
	}

	// --backup-interval 0: never, not even at start.
	dir2 := t.TempDir()
	a = startApp(t, dir2, func(c *ServeConfig) { c.BackupInterval = 0 })
	a.Close()
	if all, _ := listBackups(backupDir(filepath.Join(dir2, "data"))); len(all) != 0 {
		t.Fatalf("backups with --backup-interval 0: %v", all)
	}
}
