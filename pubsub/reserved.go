package pubsub

import (
	"strings"

	"github.com/dpaas/dpaas/internal/systopic"
)

// reservedPrefixes are the topic names the SDK keeps for its own
// components (the store replicates on "store/deltas"). An application
// that could join them could publish on them: Join refuses them, and the
// components join through internal/systopic.
var reservedPrefixes = []string{"store/", "blobs/", "dapp/", "payment/", "governance/", "pubsub/", "dpaas/"}

// Reserved reports whether name is kept for the SDK's own components, so
// that Join refuses it with ErrReservedTopic.
func Reserved(name string) bool {
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func init() {
	systopic.Install(func(p *PubSub, name string) (*Topic, error) { return p.join(name, true) })
}
