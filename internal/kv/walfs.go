package kv

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unsafe"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// logFS makes synced commits cheaper. Pebble syncs its write-ahead log
// after each group of synced commits, so the cost of one small write plus
// fdatasync bounds every durable write of the instance. Two things lower
// it on Linux filesystems like ext4:
//
//   - Logs are filled with zeros a little ahead of the writer. An
//     fdatasync after an append must also commit the file's new size to
//     the journal; one after an overwrite inside the file flushes only the
//     data (fallocate is not enough: converting its unwritten extents is a
//     metadata change too). On the development machine this took a synced
//     commit from about 280 µs to about 190 µs.
//   - Where the filesystem allows it, logs are written with direct I/O
//     (O_DIRECT): each write goes from an aligned buffer to the device,
//     without dirtying the page cache for fdatasync to find and write back,
//     so the fdatasync then only flushes the device's cache. On the
//     development machine a 4 KiB write and fdatasync took 141–148 µs and
//     70 µs of CPU this way against 166–252 µs and 90–120 µs buffered.
//     A direct write waits for the device, so what Pebble writes without
//     asking for a sync is held in memory until the next sync (or until
//     flushAt bytes have gathered) and goes out with it in one write:
//     otherwise the unsynced record a durable write often leaves behind
//     (the store files its signed delta that way) would cost a device
//     round trip before the next sync could start. Direct writes must
//     cover whole pages, so each one rewrites the last partial page with
//     the bytes already there and pads it with zeros. Held bytes are lost
//     if the process dies, which Pebble allows of any write not synced.
//
// Pebble already expects a zeroed tail in its logs, from its own
// preallocation and log recycling: replay stops at the first zeroed chunk
// of the newest log, and older logs end with an EOF record before it.
type logFS struct {
	vfs.FS
	// buffered turns direct I/O off (tests of the fallback).
	buffered bool
}

// zeroChunk is how far ahead of the writer a log is zeroed at a time.
const zeroChunk = 1 << 20

// pageSize is the alignment of direct writes: of their offset, their
// length and their buffer in memory. 4 KiB satisfies every device whose
// logical block is 512 bytes or 4 KiB.
const pageSize = 4096

var zeros = alignedBytes(zeroChunk)

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs logFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !isWAL(name) {
		return f, err
	}
	return fs.wrap(f, name, 0), nil
}

func (fs logFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil || !isWAL(newname) {
		return f, err
	}
	// a recycled log is already as long as it was: zero only past its end
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	return fs.wrap(f, newname, size), nil
}

func (fs logFS) wrap(f vfs.File, name string, size int64) *logFile {
	lf := &logFile{File: f, frontier: size}
	if !fs.buffered {
		// A second descriptor for the direct writes: the filesystem may
		// refuse O_DIRECT (tmpfs, some FUSE), and then the log is written
		// through f.
		if d, err := openDirect(name); err == nil {
			lf.direct = d
			lf.buf = alignedBytes(16 * pageSize)[:0]
			lf.frontier = alignUp(size)
		}
	}
	return lf
}

// logFile is a log file written sequentially with Write. Pebble's log
// writer calls it from one goroutine; mu makes that an assumption no
// correctness rests on.
type logFile struct {
	vfs.File
	mu       sync.Mutex
	direct   *os.File // opened with O_DIRECT, or nil: write through File
	buf      []byte   // direct: bytes from bufAt to off, not all written yet
	bufAt    int64    // direct: the page-aligned file offset of buf[0]
	held     bool     // direct: buf holds bytes not yet written
	written  int64    // direct: the file holds the log up to here
	off      int64    // where the next Write goes
	frontier int64    // the file is zeroed (or written) up to here
	synced   int64    // off at the last sync
	perSync  int64    // bytes written between syncs, smoothed
	plain    bool     // zeroing failed once: append from then on
}

// bulkSync is the write volume between syncs from which zeroing ahead
// stops paying: bulk writes (blobs, catch-up) would write every byte twice
// for syncs too rare to matter.
const bulkSync = 256 << 10

// flushAt is how many bytes a direct log holds before writing them out
// without waiting for a sync.
const flushAt = 256 << 10

func (f *logFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.direct == nil {
		if !f.plain && f.perSync < bulkSync {
			f.zeroAhead(f.off, f.off+int64(len(p)))
		}
		n, err := f.File.WriteAt(p, f.off)
		f.off += int64(n)
		return n, err
	}
	if len(f.buf)+len(p) > cap(f.buf) {
		grown := alignedBytes(int(alignUp(int64(max(len(f.buf)+len(p), 2*cap(f.buf))))))
		f.buf = append(grown[:0], f.buf...)
	}
	f.buf = append(f.buf, p...)
	f.off += int64(len(p))
	f.held = true
	if len(f.buf) >= flushAt {
		if err := f.writeOut(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// zeroAhead zeroes the file past its frontier until it covers end (with
// direct I/O, the page that holds end); the file holds written bytes up to
// written.
func (f *logFile) zeroAhead(written, end int64) {
	if f.direct != nil {
		written, end = alignUp(written), alignUp(end)
	}
	f.frontier = max(f.frontier, written)
	for end > f.frontier {
		var err error
		if f.direct != nil {
			_, err = f.direct.WriteAt(zeros, f.frontier)
		} else {
			_, err = f.File.WriteAt(zeros, f.frontier)
		}
		if err != nil {
			// not worth failing a commit for: append from then on
			f.plain = true
			return
		}
		f.frontier += zeroChunk
	}
}

// writeOut writes the held bytes, from the start of the page they begin
// in, padded with zeros to a whole page, and keeps the last partial page
// for the next write.
func (f *logFile) writeOut() error {
	if !f.held {
		return nil
	}
	// Zeroing pays only for a sync soon after: bytes written out
	// because flushAt of them gathered without one (a replica that only
	// applies its peers' deltas, which it never syncs) are not zeroed
	// ahead, which would write them twice.
	if !f.plain && f.perSync < bulkSync && f.off-f.synced < flushAt {
		f.zeroAhead(f.written, f.off)
	}
	n := len(f.buf)
	padded := int(alignUp(int64(n)))
	out := f.buf[:padded]
	clear(out[n:])
	w, err := f.direct.WriteAt(out, f.bufAt)
	if err != nil && w == 0 && f.bufAt == 0 && errors.Is(err, errInvalid) {
		// The filesystem took O_DIRECT at open but refuses the writes (it
		// wants a larger alignment): write through the file from now on.
		f.direct.Close()
		f.direct = nil
		_, err = f.File.WriteAt(f.buf, 0)
		f.buf, f.held, f.written = nil, false, f.off
		return err
	}
	if err == nil && w != padded {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("kv: log write at %d: %w", f.bufAt, err)
	}
	tail := n % pageSize
	f.written = f.off
	f.bufAt += int64(n - tail)
	f.buf = append(f.buf[:0], f.buf[n-tail:n]...)
	f.held = false
	return nil
}

func (f *logFile) noteSync() {
	f.perSync = (3*f.perSync + (f.off - f.synced)) / 4
	f.synced = f.off
}

func (f *logFile) Sync() error {
	if err := f.prepareSync(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *logFile) SyncData() error {
	if err := f.prepareSync(); err != nil {
		return err
	}
	return f.File.SyncData()
}

// prepareSync writes out what is held, so the sync that follows covers it.
func (f *logFile) prepareSync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteSync()
	if f.direct != nil {
		return f.writeOut()
	}
	return nil
}

func (f *logFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var err error
	if f.direct != nil {
		err = f.writeOut()
		err = errors.Join(err, f.direct.Close())
		f.direct = nil
	}
	return errors.Join(err, f.File.Close())
}

func alignUp(n int64) int64 { return (n + pageSize - 1) &^ (pageSize - 1) }

// alignedBytes returns n zeroed bytes whose first byte is page-aligned in
// memory, as direct I/O requires.
func alignedBytes(n int) []byte {
	b := make([]byte, n+pageSize)
	skip := (pageSize - int(uintptr(unsafe.Pointer(&b[0]))&(pageSize-1))) & (pageSize - 1)
	return b[skip : skip+n : skip+n]
}
