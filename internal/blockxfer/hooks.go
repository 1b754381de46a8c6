package blockxfer

import (
	"log/slog"

	"github.com/libp2p/go-libp2p/core/host"
)

// Hooks connect the engines of this package to the component they serve:
// its host, its logger, its counters and its lifecycle. A nil field means
// nothing to do (counters), a discarding logger, or, for Enter, always
// admitted. The functions may be called from any goroutine.
type Hooks struct {
	// Host is the host the engines open streams on, and whose connections
	// to a banned peer are closed.
	Host host.Host
	// Logger receives a warning per ban, per blocks stream dropped for a
	// malformed answer, and per blocks stream that cannot read a block it
	// is asked for.
	Logger *slog.Logger
	// BadBlocks counts blocks received unasked, forged or malformed;
	// Banned counts bans; BadRequest counts malformed blocks requests.
	BadBlocks  func(n uint64)
	Banned     func()
	BadRequest func()
	// Fetched and Served count the block bytes received and sent over the
	// blocks protocol; SharedFetch counts the blocks a reader waited for
	// another reader's fetch of.
	Fetched     func(n uint64)
	Served      func(n uint64)
	SharedFetch func()
	// Enter admits a goroutine that touches the component (one that
	// disconnects a liar, or serves a blocks stream), Exit ends it: the
	// component's Close waits for what Enter admitted, and Enter refuses
	// once Close has begun.
	Enter func() bool
	Exit  func()
}

func (h *Hooks) ensureDefaults() {
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	for _, f := range []*func(uint64){&h.BadBlocks, &h.Fetched, &h.Served} {
		if *f == nil {
			*f = func(uint64) {}
		}
	}
	for _, f := range []*func(){&h.Banned, &h.BadRequest, &h.SharedFetch, &h.Exit} {
		if *f == nil {
			*f = func() {}
		}
	}
	if h.Enter == nil {
		h.Enter = func() bool { return true }
	}
}
