package blobs

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

// serveIPFS answers GET and HEAD /ipfs/{cid}[/{path...}]: a file with
// Range, a directory with its index.html or a listing.
func (s *Store) serveIPFS(w http.ResponseWriter, req *http.Request) {
	c, err := cid.Decode(req.PathValue("cid"))
	if err != nil {
		s.metrics.badRequest.Add(1)
		http.Error(w, "blobs: invalid CID", http.StatusBadRequest)
		return
	}
	p := req.PathValue("path")
	segs, err := splitPath(p)
	if err != nil {
		s.metrics.badRequest.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rootCtx, cancel := context.WithTimeout(req.Context(), httpOpenTimeout)
	defer cancel()
	ses, err := s.openRoot(req.Context(), rootCtx, c, false)
	if err != nil {
		httpError(w, err)
		return
	}
	// Directories on the way must come within the timeout too.
	blk, typ, err := ses.resolve(rootCtx, segs)
	if err != nil {
		ses.close()
		httpError(w, fmt.Errorf("blobs: %s/%s: %w", c, p, err))
		return
	}
	if typ != TypeDir {
		rd, err := ses.fileReader(blk.Cid(), blk)
		if err != nil {
			httpError(w, err)
			return
		}
		defer rd.Close()
		name := ""
		if len(segs) > 0 {
			name = segs[len(segs)-1]
		}
		s.serveReader(w, req, blk.Cid(), name, rd)
		return
	}
	if !strings.HasSuffix(req.URL.Path, "/") {
		ses.close()
		// Relative links in a directory's pages resolve under it. The
		// Location is relative, so it holds under any prefix the handler
		// is mounted at.
		last := c.String()
		if len(segs) > 0 {
			last = segs[len(segs)-1]
		}
		loc := "./" + url.PathEscape(last) + "/"
		if req.URL.RawQuery != "" {
			loc += "?" + req.URL.RawQuery
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	// index.html, when the directory has one, stands for it.
	ib, ityp, err := ses.resolveAt(rootCtx, blk, []string{"index.html"})
	switch {
	case err == nil && ityp == TypeFile:
		rd, err := ses.fileReader(ib.Cid(), ib) // takes the session over
		if err != nil {
			httpError(w, err)
			return
		}
		defer rd.Close()
		s.serveReader(w, req, ib.Cid(), "index.html", rd)
		return
	case err != nil && !errors.Is(err, ErrNotFound):
		ses.close()
		httpError(w, err)
		return
	}
	ents, err := ses.list(rootCtx, blk)
	ses.close()
	if err != nil {
		httpError(w, err)
		return
	}
	s.serveListing(w, req, blk.Cid(), "/ipfs/"+c.String()+"/"+strings.Join(segs, "/"), len(segs) > 0, ents)
}

// httpError answers err with its status: 400 for a bad path, 410 for a
// burned blob, 422 for something that is not a file or directory, 502 for
// a malformed DAG, 503 once closed, 404 otherwise.
func httpError(w http.ResponseWriter, err error) {
	code := http.StatusNotFound
	switch {
	case errors.Is(err, ErrInvalidPath):
		code = http.StatusBadRequest
	case errors.Is(err, ErrBurned):
		code = http.StatusGone
	case errors.Is(err, ErrClosed):
		code = http.StatusServiceUnavailable
	case errors.Is(err, ErrBadDAG):
		code = http.StatusBadGateway
	case errors.Is(err, ErrNotFile):
		code = http.StatusUnprocessableEntity
	}
	http.Error(w, err.Error(), code)
}

// setPublicHeaders sets the headers every blob response carries: CORS for
// any page, and a sandbox so that an HTML blob cannot script the site that
// serves it (anyone can add one).
func setPublicHeaders(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, ETag")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
}

// serveReader sends a file: Range, ETag (the file's CID), a Content-Type
// from name's extension or else sniffed.
func (s *Store) serveReader(w http.ResponseWriter, req *http.Request, c cid.Cid, name string, rd *reader) {
	h := w.Header()
	setPublicHeaders(h)
	h.Set("ETag", `"`+c.String()+`"`)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, req, name, time.Time{}, rd)
	s.metrics.httpServed.Add(cw.n)
}

var listingTmpl = template.Must(template.New("listing").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Index of {{.Path}}</title>
<style>body{font-family:sans-serif;margin:2em}td{padding:0 1em 0 0}td.s{text-align:right}</style>
</head><body><h1>Index of {{.Path}}</h1>
<table>{{if .Up}}<tr><td><a href="../">../</a></td><td></td></tr>{{end}}
{{range .Entries}}<tr><td><a href="{{.Href}}">{{.Name}}</a></td><td class="s">{{.Size}}</td><td><code>{{.CID}}</code></td></tr>
{{end}}</table></body></html>
`))

type listingRow struct {
	Href, Name, Size, CID string
}

// serveListing sends a small HTML page listing a directory.
func (s *Store) serveListing(w http.ResponseWriter, req *http.Request, c cid.Cid, path string, up bool, ents []DirEntry) {
	rows := make([]listingRow, len(ents))
	for i, e := range ents {
		rows[i] = listingRow{Href: "./" + url.PathEscape(e.Name), Name: e.Name, Size: humanSize(e.Size), CID: e.CID.String()}
	}
	h := w.Header()
	setPublicHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The page is made here, not stored: a weak tag, revalidated.
	etag := `W/"DirIndex-` + c.String() + `"`
	h.Set("ETag", etag)
	h.Set("Cache-Control", "public, max-age=60")
	if match := req.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	cw := &countingWriter{ResponseWriter: w}
	if req.Method == http.MethodHead {
		return
	}
	if err := listingTmpl.Execute(cw, struct {
		Path    string
		Up      bool
		Entries []listingRow
	}{path, up, rows}); err == nil {
		s.metrics.httpServed.Add(cw.n)
	}
}

// humanSize formats a byte count for a listing.
func humanSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
