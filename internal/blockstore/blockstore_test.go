package blockstore

import (
	"context"
	"testing"

	"github.com/dpaas/dpaas/internal/kv"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	db, err := kv.Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sp, err := db.Space("blobs")
	if err != nil {
		t.Fatal(err)
	}
	// A neighbour in the same space must not show up as blocks.
	if err := sp.Set([]byte("p/other"), []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	return New(sp, []byte("b/"))
}

func block(t *testing.T, codec uint64, data string) blocks.Block {
	t.Helper()
	mh, err := multihash.Sum([]byte(data), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blocks.NewBlockWithCid([]byte(data), cid.NewCidV1(codec, mh))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPutGetDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a, b := block(t, cid.Raw, "a"), block(t, cid.Raw, "bb")
	if err := s.PutMany(ctx, []blocks.Block{a, b, a}); err != nil {
		t.Fatal(err)
	}
	if got := s.Written(); got != 3 {
		t.Fatalf("Written = %d, want 3 (duplicates in a batch skipped)", got)
	}
	if err := s.Put(ctx, a); err != nil || s.Written() != 4 {
		t.Fatalf("re-put: %v, %d", err, s.Written())
	}
	got, err := s.Get(ctx, b.Cid())
	if err != nil || string(got.RawData()) != "bb" {
		t.Fatalf("Get = %v, %v", got, err)
	}
	// Keyed by multihash: a dag-pb CID of the same bytes finds the block.
	same := cid.NewCidV1(cid.DagProtobuf, b.Cid().Hash())
	if ok, err := s.Has(ctx, same); err != nil || !ok {
		t.Fatalf("Has(other codec) = %v, %v", ok, err)
	}
	if n, err := s.GetSize(ctx, b.Cid()); err != nil || n != 2 {
		t.Fatalf("GetSize = %d, %v", n, err)
	}
	var seen []string
	if err := s.Each(ctx, func(mh multihash.Multihash, size int) error {
		seen = append(seen, mh.B58String())
		return nil
	}); err != nil || len(seen) != 2 {
		t.Fatalf("Each saw %v, %v", seen, err)
	}
	ch, err := s.AllKeysChan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range ch {
		n++
	}
	if n != 2 {
		t.Fatalf("AllKeysChan gave %d keys", n)
	}
	if err := s.DeleteBlock(ctx, a.Cid()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, a.Cid()); !ipld.IsNotFound(err) {
		t.Fatalf("Get after delete = %v, want not found", err)
	}
	if err := s.DeleteMany([]multihash.Multihash{b.Cid().Hash()}, true); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, b.Cid()); ok {
		t.Fatal("DeleteMany left the block")
	}
}

func TestIdentityCIDs(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mh, _ := multihash.Sum([]byte("inline"), multihash.IDENTITY, -1)
	c := cid.NewCidV1(cid.Raw, mh)
	b, _ := blocks.NewBlockWithCid([]byte("inline"), c)
	if err := s.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	if s.Written() != 0 {
		t.Fatal("identity block was stored")
	}
	got, err := s.Get(ctx, c)
	if err != nil || string(got.RawData()) != "inline" {
		t.Fatalf("Get(identity) = %v, %v", got, err)
	}
	if _, err := s.Get(ctx, cid.Undef); !ipld.IsNotFound(err) {
		t.Fatalf("Get(Undef) = %v", err)
	}
}
