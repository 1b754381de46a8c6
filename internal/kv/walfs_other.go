//go:build !linux

package kv

import (
	"errors"
	"os"
)

// openDirect reports that direct writes are not used on this system: logs
// are written through the page cache.
func openDirect(string) (*os.File, error) {
	return nil, errors.New("kv: direct writes are used on Linux only")
}

var errInvalid = errors.New("kv: invalid argument")
