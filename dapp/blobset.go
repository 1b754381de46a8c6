package dapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/dpaas/dpaas/blobs"
	"github.com/dpaas/dpaas/store"
)

// blobSetCollection is the store collection that holds the DApp's blob set:
// one document per blob, keyed by its CID.
const blobSetCollection = "dpaas/blobs"

// blobDoc is a blob's record as a document. Every field is a last-writer-
// wins register, so a Burn and a later Add (by HLC) settle the same way on
// every replica.
type blobDoc struct {
	Size   uint64 `json:"size"`
	Added  int64  `json:"added"` // unix nanoseconds, as stamped by the adder
	Burned bool   `json:"burned"`
}

// blobSet is the blobs.Registry of a Node: the blob set replicated as a
// store collection.
type blobSet struct{ c *store.Collection }

var _ blobs.Registry = blobSet{}

func (b blobSet) Add(ctx context.Context, r blobs.Record) error {
	if !r.CID.Defined() {
		return fmt.Errorf("dapp: blob set: add: %w", blobs.ErrInvalidCID)
	}
	added := r.AddedAt.UnixNano()
	var old blobDoc
	if err := b.c.Get(ctx, r.CID.String(), &old); err == nil && old.Added != 0 && old.Added < added {
		added = old.Added
	}
	return b.c.Update(ctx, r.CID.String(),
		store.Set("size", r.Size), store.Set("added", added), store.Set("burned", false))
}

func (b blobSet) Burn(ctx context.Context, c cid.Cid) error {
	return b.c.Update(ctx, c.String(), store.Set("burned", true))
}

func (b blobSet) Get(ctx context.Context, c cid.Cid) (blobs.Record, error) {
	var d blobDoc
	if err := b.c.Get(ctx, c.String(), &d); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return blobs.Record{}, fmt.Errorf("dapp: blob set: %s: %w", c, blobs.ErrNotFound)
		}
		return blobs.Record{}, err
	}
	return d.record(c), nil
}

func (b blobSet) List(ctx context.Context) ([]blobs.Record, error) {
	var out []blobs.Record
	for doc, err := range b.c.Find(ctx) {
		if err != nil {
			return nil, err
		}
		r, err := recordOf(doc.ID, doc.Data)
		if err != nil {
			continue // refused by the validator everywhere; cannot happen
		}
		out = append(out, r)
	}
	return out, nil
}

func (b blobSet) Watch(ctx context.Context) <-chan blobs.Record {
	out := make(chan blobs.Record)
	changes := b.c.Watch(ctx)
	go func() {
		defer close(out)
		for ch := range changes {
			// A lagged watcher lost changes; blobs reconciles against List
			// periodically, so nothing is lost for good.
			if ch.Lagged || ch.Deleted {
				continue
			}
			r, err := recordOf(ch.ID, ch.Doc)
			if err != nil {
				continue
			}
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (d blobDoc) record(c cid.Cid) blobs.Record {
	return blobs.Record{CID: c, Size: d.Size, AddedAt: time.Unix(0, d.Added), Burned: d.Burned}
}

func recordOf(id string, raw json.RawMessage) (blobs.Record, error) {
	c, err := cid.Decode(id)
	if err != nil {
		return blobs.Record{}, err
	}
	var d blobDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		return blobs.Record{}, err
	}
	return d.record(c), nil
}

// validateBlobSet keeps the blob set well formed on every replica: one
// document per valid CID, fields of the right types, no deletion (a blob
// leaves the DApp by being burned).
func validateBlobSet(w store.Write) error {
	if _, err := cid.Decode(w.ID); err != nil {
		return fmt.Errorf("blob set: document ID %q is not a CID", w.ID)
	}
	check := func(field string, v json.RawMessage) error {
		var err error
		switch field {
		case "size":
			var n uint64
			err = json.Unmarshal(v, &n)
		case "added":
			var n int64
			err = json.Unmarshal(v, &n)
		case "burned":
			var b bool
			err = json.Unmarshal(v, &b)
		default:
			return fmt.Errorf("blob set: unknown field %q", field)
		}
		if err != nil {
			return fmt.Errorf("blob set: field %q: %v", field, err)
		}
		return nil
	}
	switch w.Kind {
	case "set":
		return check(w.Field, w.Value)
	case "put":
		for f, v := range w.Fields {
			if err := check(f, v); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("blob set: %s is not allowed", w.Kind)
	}
}
