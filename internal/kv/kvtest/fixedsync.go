package kvtest

import (
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FixedSyncFS is a filesystem whose write-ahead logs take Delay for every
// sync, whatever the disk does: benchmarks use it to compare versions of
// a write path on a machine whose disk moves.
type FixedSyncFS struct {
	vfs.FS
	Delay time.Duration
}

func (fs FixedSyncFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return fixedSyncFile{File: f, delay: fs.Delay}, nil
}

func (fs FixedSyncFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(name, f, err)
}

func (fs FixedSyncFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(newname, f, err)
}

type fixedSyncFile struct {
	vfs.File
	delay time.Duration
}

func (f fixedSyncFile) Sync() error     { return sleep(f.delay) }
func (f fixedSyncFile) SyncData() error { return sleep(f.delay) }
