package blobs_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing/fstest"

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

func ExampleStore_AddDir() {
	ctx := context.Background()
	s, err := blobs.Open(ctx, blobs.Config{})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	// Any fs.FS: os.DirFS("dist"), an embed.FS, or a tree in memory.
	site := fstest.MapFS{
		"index.html":   {Data: []byte("<h1>hi</h1>\n")},
		"css/site.css": {Data: []byte("h1 { color: teal }\n")},
	}
	root, err := s.AddDir(ctx, site)
	if err != nil {
		panic(err)
	}
	fmt.Println(root) // Kubo 0.38.1's `ipfs add -r --cid-version=1` of it on disk

	r, err := s.OpenPath(ctx, root, "css/site.css")
	if err != nil {
		panic(err)
	}
	defer r.Close()
	css, _ := io.ReadAll(r)
	fmt.Printf("%q\n", css)

	ents, _ := s.ReadDir(ctx, root, "")
	for _, e := range ents {
		fmt.Println(e.Name, e.Size) // Size: the bytes of the blocks under it
	}
	// Output:
	// bafybeibedclffjk7rn2oj55zz3eepwqblpr32huhmfuhwtvpeg2xot5abm
	// "h1 { color: teal }\n"
	// css 75
	// index.html 12
}
