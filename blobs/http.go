package blobs

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/ipfs/go-cid"
)

// httpOpenTimeout bounds how long a request waits for the root block of a
// blob that someone claims; one that nobody claims is a 404 as soon as the
// search has found nobody.
const httpOpenTimeout = 30 * time.Second

// Handler serves GET and HEAD /blobs/{cid} and /ipfs/{cid}[/{path}] to
// browsers and other HTTP clients, from this instance or, for blocks it
// lacks, from its peers.
//
// /blobs/{cid} serves one file. It answers Range requests, sets ETag to
// the quoted CID (so If-None-Match and If-Range work), Content-Length, a
// sniffed Content-Type, an immutable Cache-Control, CORS headers that let
// any web page fetch it, and a sandboxing Content-Security-Policy so that
// an HTML blob cannot script the site that serves it.
//
// /ipfs/{cid}/{path} serves the file at path inside the directory cid (see
// OpenPath; /ipfs/{cid} alone serves a file blob too), with the same
// headers; its ETag is the file's own CID, its Content-Type comes from the
// name's extension, else from sniffing. A directory is redirected (301, a
// relative Location) to its path with a trailing '/', then served as its
// index.html when it has one, else as a small HTML listing (weak ETag,
// one-minute Cache-Control). Everything under /ipfs/ is sandboxed as
// /blobs/ is: a DApp's own web UI, which must run scripts, is served by
// the caller from OpenPath with headers of its own.
//
// Mount it on any mux:
//
//	mux.Handle("/blobs/", store.Handler())
//	mux.Handle("/ipfs/", store.Handler())
//
// Errors: 400 for a malformed CID or path, 410 for a burned blob, 404 when
// no one has the blob (as soon as the search of Open has found nobody that
// claims it, or after 30 s without its root from those who do) or the path
// names nothing, 422 for what is neither a file nor a directory (a
// symlink), 502 for a malformed directory, 503 once the Store is closed.
// The root and the directories on the path must come within 30 s.
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /blobs/{cid}", s.serveBlob)
	mux.HandleFunc("GET /ipfs/{cid}", s.serveIPFS)
	mux.HandleFunc("GET /ipfs/{cid}/{path...}", s.serveIPFS)
	return mux
}

func (s *Store) serveBlob(w http.ResponseWriter, req *http.Request) {
	c, err := cid.Decode(req.PathValue("cid"))
	if err != nil {
		s.metrics.badRequest.Add(1)
		http.Error(w, "blobs: invalid CID", http.StatusBadRequest)
		return
	}
	rootCtx, cancel := context.WithTimeout(req.Context(), httpOpenTimeout)
	defer cancel()
	// The root must come within the timeout; the reads that follow are
	// bounded by the request only, however long the download.
	rd, err := s.open(req.Context(), rootCtx, c, false)
	if err != nil {
		switch {
		case errors.Is(err, ErrBurned):
			http.Error(w, err.Error(), http.StatusGone)
		case errors.Is(err, ErrClosed):
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		case errors.Is(err, ErrNotFile):
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		default:
			http.Error(w, err.Error(), http.StatusNotFound)
		}
		return
	}
	defer rd.Close()
	h := w.Header()
	// Blobs are public and named by their hash: any page may fetch them.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, ETag")
	h.Set("ETag", `"`+c.String()+`"`)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	// Anyone can add a blob: an HTML one must not run scripts with the
	// serving site's origin.
	h.Set("Content-Security-Policy", "sandbox")
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, req, "", time.Time{}, rd)
	s.metrics.httpServed.Add(cw.n)
}

// countingWriter counts the body bytes sent.
type countingWriter struct {
	http.ResponseWriter
	n uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += uint64(n)
	return n, err
}

var _ io.Writer = (*countingWriter)(nil)
