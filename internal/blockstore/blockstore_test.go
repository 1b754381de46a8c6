package blockstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dpaas/dpaas/internal/kv"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
)

// memSpace opens an in-memory database, closed when the test ends, and
// returns its "blobs" space.
func memSpace(t *testing.T) *kv.Space {
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
	return sp
}

func newStore(t *testing.T) *Store {
	t.Helper()
	sp := memSpace(t)
	// A neighbour in the same space must not show up as blocks.
	if err := sp.Set([]byte("p/other"), []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	s, err := New(sp, Config{Prefix: []byte("b/")})
	if err != nil {
		t.Fatal(err)
	}
	return s
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

// TestWriteOut puts more than one buffer's worth of blocks, so that some are
// ingested in the background and some wait for Flush, and checks that every
// block reads back before and after Flush and from a new Store on the same
// database, and that deleting a block still buffered forgets it.
func TestWriteOut(t *testing.T) {
	ctx := context.Background()
	sp := memSpace(t)
	cfg := Config{Prefix: []byte("b/"), ValuePrefix: []byte("\x00v/"), FlushBytes: 100 << 10}
	s, err := New(sp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var all []blocks.Block
	for i := range 40 {
		// Sizes around the chunk size, and an empty block.
		data := make([]byte, (i*7919)%(3*valueChunk/2))
		for j := range data {
			data[j] = byte(i + j)
		}
		mh, _ := multihash.Sum(data, multihash.SHA2_256, -1)
		b, _ := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, mh))
		all = append(all, b)
		if err := s.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Store, what string) {
		t.Helper()
		for i, b := range all {
			got, err := s.Get(ctx, b.Cid())
			if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
				t.Fatalf("%s: block %d: %v", what, i, err)
			}
			if n, err := s.GetSize(ctx, b.Cid()); err != nil || n != len(b.RawData()) {
				t.Fatalf("%s: block %d: size %d, %v", what, i, n, err)
			}
		}
	}
	check(s, "buffered")
	gone := all[len(all)-1]
	all = all[:len(all)-1]
	if err := s.DeleteBlock(ctx, gone.Cid()); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	check(s, "flushed")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Once closed, calls are refused rather than reaching a database that
	// may be closed under them.
	if _, err := s.Get(ctx, all[0].Cid()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if err := s.Put(ctx, all[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	s2, err := New(sp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	check(s2, "reopened")
	if ok, _ := s2.Has(ctx, gone.Cid()); ok {
		t.Fatal("a block deleted while buffered was written out")
	}
	n := 0
	if err := s2.Each(ctx, func(multihash.Multihash, int) error { n++; return nil }); err != nil || n != len(all) {
		t.Fatalf("Each saw %d blocks, %v; want %d", n, err, len(all))
	}
	// Putting blocks already stored writes nothing new.
	if err := s2.PutMany(ctx, all); err != nil {
		t.Fatal(err)
	}
	if err := s2.Flush(); err != nil {
		t.Fatal(err)
	}
	check(s2, "re-put")
}

// TestIntentRecovery leaves the values of an ingestion without their index,
// as a crash between the two would, and checks that New deletes them.
func TestIntentRecovery(t *testing.T) {
	sp := memSpace(t)
	cfg := Config{Prefix: []byte("b/")}
	s, err := New(sp, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pdb := sp.DB().Pebble()
	for seq := uint64(10); seq <= 12; seq++ {
		if err := pdb.Set(s.chunkKey(seq, 0), []byte("orphan"), nil); err != nil {
			t.Fatal(err)
		}
	}
	kept := s.chunkKey(13, 0)
	if err := pdb.Set(kept, []byte("not ours"), nil); err != nil {
		t.Fatal(err)
	}
	first := binary.BigEndian.AppendUint64(nil, 10)
	if err := pdb.Set(s.key(tagIntent, first), binary.BigEndian.AppendUint64(nil, 12), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := New(sp, cfg); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(10); seq <= 12; seq++ {
		if _, c, err := pdb.Get(s.chunkKey(seq, 0)); err == nil {
			c.Close()
			t.Fatalf("value %d of an unfinished ingestion survived", seq)
		}
	}
	if _, c, err := pdb.Get(s.key(tagIntent, first)); err == nil {
		c.Close()
		t.Fatal("intent survived")
	}
	if _, c, err := pdb.Get(kept); err != nil {
		t.Fatal("recovery deleted a value outside the intent")
	} else {
		c.Close()
	}
}

// TestMissingChunkIsAnError: a block whose index survives but one of whose
// value chunks is gone (a damaged database) reads as an error, never as
// short or shifted bytes.
func TestMissingChunkIsAnError(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		size   int
		delete int // chunk to delete
	}{
		{"one chunk", valueChunk / 2, 0},
		{"first of four", 4 * valueChunk, 0},
		{"middle of four", 4 * valueChunk, 2},
		{"last of four", 4*valueChunk - 1, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			sp := memSpace(t)
			s, err := New(sp, Config{Prefix: []byte("b/"), ValuePrefix: []byte("\x00v/")})
			if err != nil {
				t.Fatal(err)
			}
			data := bytes.Repeat([]byte{7}, c.size)
			mh, _ := multihash.Sum(data, multihash.SHA2_256, -1)
			b, _ := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, mh))
			if err := s.Put(ctx, b); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Get(ctx, b.Cid()); err != nil || !bytes.Equal(got.RawData(), data) {
				t.Fatalf("intact block: %v", err)
			}
			ix, ok, err := s.readIndex(mh)
			if err != nil || !ok {
				t.Fatalf("index: %v %v", ok, err)
			}
			if err := s.pdb.Delete(s.chunkKey(ix.seq, c.delete), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, b.Cid())
			if !errors.Is(err, errMissing) {
				t.Fatalf("Get with chunk %d gone = %v bytes, %v; want errMissing", c.delete, got, err)
			}
			if found, err := s.WriteBlock(b.Cid(), io.Discard, func(int) error { return nil }); !found || !errors.Is(err, errMissing) {
				t.Fatalf("WriteBlock with chunk %d gone = %v, %v; want found and errMissing", c.delete, found, err)
			}
		})
	}
}

// TestWriteBlock: WriteBlock streams a block's bytes, whether buffered,
// written out in several chunks, or inline in an identity CID, after
// announcing their length, and reports a block it does not hold.
func TestWriteBlock(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	small := block(t, cid.Raw, "buffered")
	bigData := bytes.Repeat([]byte("0123456789abcdef"), 3*valueChunk/16+5)
	mh, _ := multihash.Sum(bigData, multihash.SHA2_256, -1)
	big, _ := blocks.NewBlockWithCid(bigData, cid.NewCidV1(cid.Raw, mh))
	if err := s.Put(ctx, big); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil { // big is in chunks now
		t.Fatal(err)
	}
	if err := s.Put(ctx, small); err != nil { // small stays buffered
		t.Fatal(err)
	}
	idMH, _ := multihash.Sum([]byte("inline"), multihash.IDENTITY, -1)
	identity, _ := blocks.NewBlockWithCid([]byte("inline"), cid.NewCidV1(cid.Raw, idMH))
	for _, b := range []blocks.Block{small, big, identity} {
		var buf bytes.Buffer
		announced := -1
		found, err := s.WriteBlock(b.Cid(), &buf, func(n int) error {
			announced = n
			buf.WriteString("|")
			return nil
		})
		if err != nil || !found {
			t.Fatalf("%s: found %v, err %v", b.Cid(), found, err)
		}
		if want := "|" + string(b.RawData()); buf.String() != want || announced != len(b.RawData()) {
			t.Fatalf("%s: wrote %d bytes after announcing %d, want %d", b.Cid(), buf.Len()-1, announced, len(b.RawData()))
		}
	}
	called := false
	found, err := s.WriteBlock(block(t, cid.Raw, "absent").Cid(), io.Discard, func(int) error { called = true; return nil })
	if found || err != nil || called {
		t.Fatalf("absent block: found %v, err %v, announced %v", found, err, called)
	}
	// An error from before stops the write.
	stop := errors.New("stop")
	var buf bytes.Buffer
	if _, err := s.WriteBlock(big.Cid(), &buf, func(int) error { return stop }); !errors.Is(err, stop) || buf.Len() != 0 {
		t.Fatalf("before failed: err %v, %d bytes written", err, buf.Len())
	}
}

// A reader that outlives its caller (boxo's blockservice reads from a
// goroutine of its own) may still call Get while the Store and then its
// database close: it gets ErrClosed, never a closed database.
func TestReadersAcrossClose(t *testing.T) {
	db, err := kv.Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := db.Space("blobs")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(sp, Config{Prefix: []byte("b/"), FlushBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var bs []blocks.Block
	for i := range 64 {
		bs = append(bs, block(t, cid.Raw, fmt.Sprintf("block %d %s", i, strings.Repeat("x", 200))))
	}
	if err := s.PutMany(ctx, bs); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	refused := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i++ {
				if _, err := s.Get(ctx, bs[i%len(bs)].Cid()); err != nil {
					refused <- err
					return
				}
			}
		}()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Every reader keeps going until it is refused.
	wg.Wait()
	for range 4 {
		if err := <-refused; !errors.Is(err, ErrClosed) {
			t.Errorf("Get during Close: %v, want ErrClosed", err)
		}
	}
}
