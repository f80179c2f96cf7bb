package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/depotcc/depot/storage"
)

// The data directory: the store in db/, backups in backups/ (outside the
// store, which nutsdb backs up whole), the signing key beside them.
func dbDir(data string) string     { return filepath.Join(data, "db") }
func backupDir(data string) string { return filepath.Join(data, "backups") }

// damaged explains a store that will not open, and the one command that
// recovers it.
func damaged(data string, err error) error {
	newest, _ := newestBackup(backupDir(data))
	how := "No backup exists yet in " + backupDir(data) + ": move " + dbDir(data) +
		" aside to start empty (users, devices and history would have to be set up again)."
	if newest != "" {
		how = fmt.Sprintf("Stop the depot and run:\n\n    depot restore --data %s\n\nIt keeps the damaged store as %s.broken-<time> and restores the newest backup (%s).\nWhat was recorded after that backup is lost.",
			data, dbDir(data), filepath.Base(newest))
	}
	return fmt.Errorf("the store in %s cannot be opened: %w.\n\nThis usually means the box lost power in the middle of a write: the last record of a\ndata file is torn. A torn record was never acknowledged, but the store will not open past it.\n%s", dbDir(data), err, how)
}

func listBackups(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "depot-*.tar.gz"))
	sort.Strings(m) // names carry a sortable UTC time
	return m, err
}

func newestBackup(dir string) (string, error) {
	m, err := listBackups(dir)
	if err != nil || len(m) == 0 {
		return "", err
	}
	return m[len(m)-1], nil
}

// backupLayout is the UTC time in a backup's name (depot-<time>.tar.gz).
const backupLayout = "20060102-150405.000"

// backupTime is when a backup was taken: the time in its name, else its
// file's modification time.
func backupTime(path string) (time.Time, error) {
	stamp := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "depot-"), ".tar.gz")
	if t, err := time.ParseInLocation(backupLayout, stamp, time.UTC); err == nil {
		return t, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// backupDue says whether the data directory's newest backup is older than
// interval at now, or there is none.
func backupDue(data string, interval time.Duration, now time.Time) bool {
	newest, err := newestBackup(backupDir(data))
	if err != nil || newest == "" {
		return true
	}
	at, err := backupTime(newest)
	return err != nil || now.Sub(at) >= interval
}

// backupNow writes a backup of the store and keeps the newest keep.
func (m *Main) backupNow() (string, error) {
	// The backup holds the store's read lock: commits wait for it, and the
	// watchdog knows why (systemd.go).
	m.maintenance.Add(1)
	defer m.maintenance.Add(-1)
	dir := backupDir(m.Config.Data)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	name := filepath.Join(dir, "depot-"+time.Now().UTC().Format(backupLayout)+".tar.gz")
	tmp := name + ".part"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	start := time.Now()
	err = m.store.BackupTarGZ(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("backup: %w", err)
	}
	all, _ := listBackups(dir)
	for len(all) > m.Config.BackupKeep {
		os.Remove(all[0])
		all = all[1:]
	}
	m.Log.Info("backup written", "file", name, "took", time.Since(start).Round(time.Millisecond))
	return name, nil
}

// scheduledBackup runs every BackupInterval.
func (m *Main) scheduledBackup() {
	if _, err := m.backupNow(); err != nil {
		m.Log.Error("scheduled backup failed", "err", err)
	}
}

// runBackup: depot backup — ask a running depot for a backup now.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("depot backup", flag.ContinueOnError)
	c, err := adminClient(ctx, fs, args, stderr)
	if err != nil {
		return err
	}
	var out any
	if err := c.Do(ctx, "POST", "/api/v1/admin/backup", nil, &out); err != nil {
		return err
	}
	printJSON(stdout, out)
	return nil
}

// runRestore: depot restore — with the depot stopped, replace the store by
// a backup (the newest, or --from), keeping the old store aside.
func runRestore(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("depot restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./data", "data directory of the (stopped) depot")
	from := fs.String("from", "", "backup file (default: the newest in <data>/backups)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envFlags(fs); err != nil {
		return err
	}
	src := *from
	if src == "" {
		n, err := newestBackup(backupDir(*data))
		if err != nil {
			return err
		}
		if n == "" {
			return fmt.Errorf("no backup in %s", backupDir(*data))
		}
		src = n
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	staging := dbDir(*data) + ".restoring"
	os.RemoveAll(staging)
	if err := storage.RestoreTarGZ(f, staging); err != nil {
		return err
	}
	// Prove the backup opens before touching the current store.
	db, err := storage.Open(staging, nil)
	if err != nil {
		os.RemoveAll(staging)
		return fmt.Errorf("the backup %s does not open: %w", src, err)
	}
	db.Close()
	aside := ""
	if _, err := os.Stat(dbDir(*data)); err == nil {
		// A running depot holds a lock on the store; opening it tells.
		if db, err := storage.Open(dbDir(*data), nil); err == nil {
			db.Close()
		} else if errors.Is(err, storage.ErrInUse) || (!errors.Is(err, storage.ErrCorrupt) && strings.Contains(err.Error(), "lock")) {
			os.RemoveAll(staging)
			return fmt.Errorf("the depot seems to be running on %s: stop it first (%v)", *data, err)
		}
		aside = dbDir(*data) + ".broken-" + time.Now().UTC().Format("20060102-150405")
		if err := os.Rename(dbDir(*data), aside); err != nil {
			os.RemoveAll(staging)
			return err
		}
	}
	if err := os.Rename(staging, dbDir(*data)); err != nil {
		return err
	}
	printJSON(stdout, map[string]string{"restored": src, "into": dbDir(*data), "previousStoreKeptAs": aside})
	return nil
}
