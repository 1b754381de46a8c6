package store

// indexOp is an index entry to set or delete. The entries one flush
// writes have distinct keys: each holds its document's ID and a
// document's old and new entries differ.
type indexOp struct {
	key []byte
	del bool
}

func indexKey(coll, field string, enc []byte, id string) []byte {
	k := make([]byte, 0, 3+len(coll)+len(field)+len(enc)+len(id))
	k = append(k, tIndex)
	k = append(k, coll...)
	k = append(k, 0)
	k = append(k, field...)
	k = append(k, 0)
	k = append(k, enc...)
	return append(k, id...)
}

func indexEntry(view []byte, field string) []byte {
	if view == nil {
		return nil
	}
	raw, ok := lookup(view, field)
	if !ok {
		return nil
	}
	enc, err := encodeValue(raw)
	if err != nil || enc[0] == typeOther {
		return nil
	}
	return enc
}

// appendIndexOps appends what changes in the index on field when a
// document goes from before to after.
func appendIndexOps(ops []indexOp, coll, field, id string, before, after []byte) []indexOp {
	old, neu := indexEntry(before, field), indexEntry(after, field)
	if string(old) == string(neu) && (old == nil) == (neu == nil) {
		return ops
	}
	if old != nil {
		ops = append(ops, indexOp{key: indexKey(coll, field, old, id), del: true})
	}
	if neu != nil {
		ops = append(ops, indexOp{key: indexKey(coll, field, neu, id)})
	}
	return ops
}
