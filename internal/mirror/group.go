package mirror

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Member is what grouping knows of one instance: the addresses its probers
// reached it at, and the location it declares.
type Member struct {
	ID       peer.ID
	Observed []netip.Addr
	Location Location
}

// PrefixOf is the network an address counts in for diversity: its /24 for
// IPv4 (IPv4-mapped IPv6 included), its /48 for IPv6. It returns an
// invalid prefix for an invalid or unspecified address.
func PrefixOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() {
		return netip.Prefix{}
	}
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// Groups partitions instances into diversity groups: two instances are in
// one group when an address observed for one shares its prefix (PrefixOf)
// with an address observed for the other, or when both declare the same
// provider and region (a provider is required); and groups chain, so A
// with B and B with C puts all three in one group. A group's ID is the
// smallest peer ID (in string order) among its members, so it is the same
// on every replica given the same members, whatever their order.
func Groups(members []Member) map[peer.ID]string {
	// Sorted by the IDs' text, each encoded once: the sort compares often.
	ms := slices.Clone(members)
	ids := make(map[peer.ID]string, len(ms))
	for _, m := range ms {
		ids[m.ID] = m.ID.String()
	}
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(ids[a.ID], ids[b.ID]) })
	parent := make([]int, len(ms))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	union := func(i, j int) {
		ri, rj := find(i), find(j)
		// The smaller index, so the smallest ID, is the root.
		if ri < rj {
			parent[rj] = ri
		} else if rj < ri {
			parent[ri] = rj
		}
	}
	first := make(map[string]int) // key -> first member index with it
	for i, m := range ms {
		var keys []string
		for _, a := range m.Observed {
			if p := PrefixOf(a); p.IsValid() {
				keys = append(keys, "net "+p.String())
			}
		}
		if m.Location.Provider != "" {
			keys = append(keys, "loc "+m.Location.Provider+"\x00"+m.Location.Region)
		}
		for _, k := range keys {
			if j, ok := first[k]; ok {
				union(i, j)
			} else {
				first[k] = i
			}
		}
	}
	out := make(map[peer.ID]string, len(ms))
	for i, m := range ms {
		out[m.ID] = ids[ms[find(i)].ID]
	}
	return out
}
