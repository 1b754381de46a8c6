package blobs_test

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/dpaas/dpaas/blobs"
)

func Example() {
	ctx := context.Background()
	// A local, in-memory store; the dapp package passes the instance's
	// key space, host, AppID and replicated registry instead.
	s, err := blobs.Open(ctx, blobs.Config{})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	c, err := s.Add(ctx, strings.NewReader("hello world\n"))
	if err != nil {
		panic(err)
	}
	fmt.Println(c) // the same CID as `ipfs add --cid-version=1`

	r, err := s.Open(ctx, c)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	if _, err := r.Seek(6, io.SeekStart); err != nil {
		panic(err)
	}
	rest, _ := io.ReadAll(r)
	fmt.Printf("%q\n", rest)

	st, _ := s.Stat(ctx, c)
	fmt.Println(st.Size, st.Complete, st.Pinned)
	// Output:
	// bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4
	// "world\n"
	// 12 true true
}
