// Package kvtest has test doubles for internal/kv.
package kvtest

import (
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FullFS is a filesystem that fails every write with ENOSPC, as a full
// disk does, while Full is set. Files opened before keep failing too.
type FullFS struct {
	vfs.FS
	Full *atomic.Bool
}

// NewFullFS wraps fs; the returned flag fills the disk when set.
func NewFullFS(fs vfs.FS) (FullFS, *atomic.Bool) {
	full := new(atomic.Bool)
	return FullFS{FS: fs, Full: full}, full
}

func (fs FullFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if fs.Full.Load() {
		return nil, syscall.ENOSPC
	}
	f, err := fs.FS.Create(name, category)
	if err != nil {
		return nil, err
	}
	return fullFile{File: f, full: fs.Full}, nil
}

func (fs FullFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil {
		return nil, err
	}
	return fullFile{File: f, full: fs.Full}, nil
}

func (fs FullFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	if err != nil {
		return nil, err
	}
	return fullFile{File: f, full: fs.Full}, nil
}

type fullFile struct {
	vfs.File
	full *atomic.Bool
}

func (f fullFile) Write(p []byte) (int, error) {
	if f.full.Load() {
		return 0, syscall.ENOSPC
	}
	return f.File.Write(p)
}

func (f fullFile) WriteAt(p []byte, off int64) (int, error) {
	if f.full.Load() {
		return 0, syscall.ENOSPC
	}
	return f.File.WriteAt(p, off)
}
