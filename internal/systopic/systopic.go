// Package systopic is the one way the SDK's own components join the pubsub
// topics reserved for them (the store's "store/deltas", ...), which
// pubsub.PubSub.Join refuses to applications. Package pubsub installs the
// joiner when it is loaded; internal packages cannot import public ones,
// so the types are the caller's to name:
//
//	topic, err := systopic.Join[*pubsub.Topic](ps, store.TopicName)
//
// Being internal, it is out of reach of code outside this module.
package systopic

import (
	"errors"
	"fmt"
	"sync/atomic"
)

var joiner atomic.Value // func(P, string) (T, error)

// Install sets the function Join calls; package pubsub calls it from init.
func Install[P, T any](join func(p P, name string) (T, error)) { joiner.Store(join) }

// Join joins the topic called name on ps, reserved names included.
func Join[T, P any](ps P, name string) (T, error) {
	f, ok := joiner.Load().(func(P, string) (T, error))
	if !ok {
		var zero T
		return zero, fmt.Errorf("systopic: join %q: %w", name, errNoJoiner)
	}
	return f(ps, name)
}

var errNoJoiner = errors.New("no joiner installed for these types")
