package kv

import (
	"os"
	"syscall"
)

// openDirect opens name for direct writes, which bypass the page cache.
func openDirect(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_WRONLY|syscall.O_DIRECT|syscall.O_CLOEXEC, 0)
}

// errInvalid is what a direct write that breaks the device's alignment
// rules fails with.
var errInvalid error = syscall.EINVAL
