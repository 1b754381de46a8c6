package blobs

import (
	"fmt"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

func TestPlaceHoldersAcrossGroups(t *testing.T) {
	var live []peer.ID
	for i := range 6 {
		live = append(live, peer.ID(fmt.Sprintf("p%d", i)))
	}
	// p0..p3 share one group; p4 and p5 have one each.
	group := func(p peer.ID) string {
		switch p {
		case "p4", "p5":
			return string(p)
		}
		return "shared"
	}
	for i := range 50 {
		h, _ := mh.Sum(fmt.Appendf(nil, "blob %d", i), mh.SHA2_256, -1)
		c := cid.NewCidV1(cid.Raw, h)
		got := placeHolders(c, live, 3, group)
		seen := map[string]bool{}
		for _, p := range got {
			seen[group(p)] = true
		}
		if len(got) != 3 || len(seen) != 3 {
			t.Fatalf("blob %d: holders %v span groups %v, want 3 holders in 3 groups", i, got, seen)
		}
		// More copies than groups: every group first, then the rest.
		got = placeHolders(c, live, 4, group)
		seen = map[string]bool{}
		for _, p := range got {
			seen[group(p)] = true
		}
		if len(got) != 4 || len(seen) != 3 {
			t.Fatalf("blob %d: k=4 holders %v span groups %v", i, got, seen)
		}
		// No group function: the plain rendezvous choice.
		if a, b := placeHolders(c, live, 3, nil), holders(c, live, 3); fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("without groups %v, want %v", a, b)
		}
	}
}
