package blobs

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The tests below bound Open by a context far longer than the search for
// holders takes, and shorter than a test's patience: before Open reported
// promptly that nobody has a blob, they ran into that bound.
const patience = 30 * time.Second

// openWithin opens c on s with opts, bounded by patience.
func openWithin(s *Store, c cid.Cid, opts ...OpenOption) error {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	rd, err := s.Open(ctx, c, opts...)
	if err == nil {
		rd.Close()
	}
	return err
}

// wantNotFound fails unless err says promptly that nobody has the blob,
// and what was tried.
func wantNotFound(t *testing.T, err error, tried string) {
	t.Helper()
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open = %v, want ErrNotFound and ErrUnavailable before the deadline", err)
	}
	if !strings.Contains(err.Error(), tried) {
		t.Fatalf("Open = %q, want it to say %q", err, tried)
	}
	t.Logf("error reads: %v", err)
}

// TestOpenNobodyHasIsNotFound: Open of a CID that no connected replica
// keeps fails with ErrNotFound once they have said so, not at the
// context's end.
func TestOpenNobodyHasIsNotFound(t *testing.T) {
	reg := NewMemRegistry()
	a := startReplica(t, reg, nil)
	unknown := rawCID([]byte("no one has this"))
	wantNotFound(t, openWithin(a.store, unknown), "0 connected replicas asked")

	b := startReplica(t, reg, nil)
	c := startReplica(t, reg, nil)
	connectAll(t, a, b, c)
	wantNotFound(t, openWithin(a.store, unknown), "2 connected replicas asked")
}

// TestHTTPNobodyHasIs404: the HTTP handler answers 404 for a CID nobody
// has as soon as the search has found nobody, not at its 30 s limit.
func TestHTTPNobodyHasIs404(t *testing.T) {
	reg := NewMemRegistry()
	a := startReplica(t, reg, nil)
	b := startReplica(t, reg, nil)
	connect(t, a, b)
	unknown := rawCID([]byte("no one has this"))
	srv := httptest.NewServer(a.store.Handler())
	defer srv.Close()
	client := srv.Client()
	client.Timeout = httpOpenTimeout * 2 / 3
	resp, err := client.Get(srv.URL + "/blobs/" + unknown.String())
	if err != nil {
		t.Fatalf("GET of a CID nobody has: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET of a CID nobody has: %d, want 404", resp.StatusCode)
	}
}

// TestOpenWaitsWhileClaimed: a connected replica that keeps the blob,
// even one still fetching it, makes Open wait for the root until the
// context ends.
func TestOpenWaitsWhileClaimed(t *testing.T) {
	unknown := rawCID([]byte("announced, held by no one yet"))
	// b is told to keep the blob: it pins it and waits for a holder.
	regB := NewMemRegistry()
	if err := regB.Add(context.Background(), Record{CID: unknown, Size: 29, AddedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	b := startReplica(t, regB, nil)
	eventually(t, time.Minute, "b to pin the blob", func() bool { return b.store.Metrics().Pending == 1 })
	a := startReplica(t, NewMemRegistry(), nil)
	connect(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := a.store.Open(ctx, unknown)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNotFound) {
		t.Fatalf("Open = %v, want ErrUnavailable at the deadline", err)
	}
}

// TestOpenWaitForHolder: with WaitForHolder, Open of a blob nobody offers
// yet waits for a holder to connect; so does background replication of a
// blob whose holder is not connected yet.
func TestOpenWaitForHolder(t *testing.T) {
	r := seeded(t)
	data := randomBytes(r, 5*ChunkSize+3)
	holder, root := addedOn(t, data)
	reg := NewMemRegistry()
	if err := reg.Add(context.Background(), Record{CID: root, Size: uint64(len(data)), AddedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	rdr := startReplica(t, reg, nil)
	done := readInBackground(rdr.store, root, WaitForHolder())
	// Without the option, the same Open says at once that nobody has it.
	wantNotFound(t, openWithin(rdr.store, root), "0 connected replicas asked")
	connect(t, rdr, holder)
	if res := <-done; res.err != nil || !bytes.Equal(res.data, data) {
		t.Fatalf("read %d bytes (%v), want the %d added", len(res.data), res.err, len(data))
	}
	eventually(t, time.Minute, "replication to complete", func() bool {
		m := rdr.store.Metrics()
		return m.Pinned == 1 && m.Pending == 0
	})
}

// TestOpenProviderRecordClaims: with Routing, a provider record of a peer
// not connected is a claim (Open waits); no record, and no connected
// replica, is ErrNotFound at once.
func TestOpenProviderRecordClaims(t *testing.T) {
	table := &memProviders{provs: make(map[cid.Cid][]peer.AddrInfo)}
	withRouting := func(c *Config) {
		h := c.Host
		c.Routing = &memRouting{table: table, self: func() peer.AddrInfo {
			return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
		}}
	}
	a := startReplica(t, NewMemRegistry(), withRouting)
	unknown := rawCID([]byte("provided by someone gone"))
	wantNotFound(t, openWithin(a.store, unknown), "provider records searched")

	gone := newHost(t) // a provider that does not answer
	gone.Close()
	table.mu.Lock()
	table.provs[unknown] = []peer.AddrInfo{{ID: gone.ID(), Addrs: gone.Addrs()}}
	table.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := a.store.Open(ctx, unknown)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrNotFound) {
		t.Fatalf("Open with a provider record = %v, want ErrUnavailable at the deadline", err)
	}
}

// TestOpenFromPlainIPFSPeer: with IPFSBitswap, a connected IPFS peer that
// is no replica (a Kubo node) is asked over bitswap: a blob it has opens;
// one it lacks is ErrNotFound once it has had its chance to say HAVE.
func TestOpenFromPlainIPFSPeer(t *testing.T) {
	r := seeded(t)
	data := randomBytes(r, 3*ChunkSize+11)
	src, root := addedOn(t, data)
	ipfs := startPlainIPFS(t, src.store, root)
	rdr := startReplica(t, NewMemRegistry(), func(c *Config) { c.IPFSBitswap = true })
	connect(t, rdr, &replica{host: ipfs})
	if got := readAll(t, rdr.store, root, patience); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes that differ from the %d added", len(got), len(data))
	}
	wantNotFound(t, openWithin(rdr.store, rawCID([]byte("not on that peer"))), "1 IPFS peers given")
}
