package blobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/ipfs/go-cid"
)

// TestChallenge: a holder's ProveRange equals RangeDigest over the file's
// bytes for random ranges and nonces, the end of the file included; a
// store that does not hold the blob fails with ErrNotFound; HeldSample
// lists only whole blobs, at most n.
func TestChallenge(t *testing.T) {
	r := seeded(t)
	ctx := context.Background()
	s := newLocal(t)
	data := randomBytes(r, 3*ChunkSize+1234)
	c, err := s.Add(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var small []cid.Cid
	for i := range 3 {
		sc, err := s.Add(ctx, bytes.NewReader(randomBytes(r, 100+i)))
		if err != nil {
			t.Fatal(err)
		}
		small = append(small, sc)
	}
	for range 30 {
		off := uint64(r.IntN(len(data) + 10))
		n := uint64(r.IntN(MaxChallengeRange + 1))
		nonce := randomBytes(r, 16)
		got, err := s.ProveRange(ctx, c, off, n, nonce)
		if err != nil {
			t.Fatal(err)
		}
		end := min(off+n, uint64(len(data)))
		want := sha256.Sum256(append(append([]byte(nil), nonce...), data[min(off, end):end]...))
		if got != want {
			t.Fatalf("range %d+%d: digest differs from the file's bytes", off, n)
		}
		rd, err := s.Open(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		d, err := RangeDigest(rd, off, n, nonce)
		rd.Close()
		if err != nil || d != want {
			t.Fatalf("RangeDigest over Open: %v, equal %v", err, d == want)
		}
	}
	if _, err := s.ProveRange(ctx, c, 0, MaxChallengeRange+1, nil); err == nil {
		t.Fatal("a range over the bound was answered")
	}
	other := newLocal(t)
	if _, err := other.ProveRange(ctx, c, 0, 100, []byte("n")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a store without the blob: %v, want ErrNotFound", err)
	}
	got, err := s.HeldSample(ctx, 2, rand.New(rand.NewPCG(1, 2)))
	if err != nil || len(got) != 2 {
		t.Fatalf("HeldSample(2) = %v, %v", got, err)
	}
	all, err := s.HeldSample(ctx, 10, rand.New(rand.NewPCG(1, 2)))
	if err != nil || len(all) != 4 {
		t.Fatalf("HeldSample(10) = %v, %v; want the 4 blobs", all, err)
	}
	if none, err := other.HeldSample(ctx, 10, rand.New(rand.NewPCG(1, 2))); err != nil || len(none) != 0 {
		t.Fatalf("empty store's sample %v, %v", none, err)
	}
}
