package storage

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrCorrupt is returned by Open when the store's files fail their checks:
// typically a record torn by a power loss in the middle of a write. Such a
// record was never acknowledged (a QoS 1 fix is PUBACKed only after its
// batch is on disk), but nutsdb refuses to open past it.
var ErrCorrupt = errors.New("store damaged")

// BackupTarGZ writes a consistent copy of the store as a .tar.gz. It holds
// the store's read lock while it runs, so writers wait: schedule it at a
// quiet time.
func (s *DB) BackupTarGZ(w io.Writer) error {
	if err := s.db.BackupTarGZ(w); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// RestoreTarGZ unpacks a backup made by BackupTarGZ into dir, which must
// not exist yet. Only plain files with plain names are taken.
func RestoreTarGZ(r io.Reader, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("restore: %s already exists", dir)
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("restore: not a .tar.gz backup: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	files := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("restore: read backup: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := filepath.Base(filepath.Clean("/" + h.Name))
		if name == "" || name == "/" || strings.HasPrefix(name, ".") {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		_, err = io.Copy(f, io.LimitReader(tr, h.Size))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("restore %s: %w", name, err)
		}
		files++
	}
	if files == 0 {
		return errors.New("restore: the backup holds no files")
	}
	return nil
}
