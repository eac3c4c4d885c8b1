package store

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// resourceID keys a resource's attributes JSON in span_resources (PostgreSQL): the first 8 bytes of
// its MD5, which migration 00009 computes the same way in SQL. 0 is no resource.
func resourceID(attrs []byte) int64 {
	if len(attrs) == 0 || string(attrs) == "{}" {
		return 0
	}
	sum := md5.Sum(attrs)
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

type resourceKey struct {
	tenant string
	id     int64
}

// storeResources sets each span's resource id and stores the resources this process has not stored
// yet, so that a span carries 8 bytes instead of its process's attributes (PostgreSQL only). Spans
// of one OTLP resource share one attributes slice, so the hash is computed about once per resource
// and batch. Resources are written before the spans and never updated; a batch that then fails
// leaves a resource row that the retry needs anyway.
func (t *Tenant) storeResources(ctx context.Context, spans []Span) error {
	if t.db.dialect != Postgres {
		return nil
	}
	var (
		prev   []byte
		prevID int64
		fresh  map[int64][]byte
	)
	for i := range spans {
		a := spans[i].ResourceAttributes
		if len(a) == 0 || len(a) != len(prev) || &a[0] != &prev[0] {
			prev, prevID = a, resourceID(a)
			if _, ok := t.db.resources.Load(resourceKey{t.id, prevID}); !ok && prevID != 0 {
				if fresh == nil {
					fresh = map[int64][]byte{}
				}
				fresh[prevID] = a
			}
		}
		spans[i].resourceID = prevID
	}
	if len(fresh) == 0 {
		return nil
	}
	// In key order: writers inserting the same new resources in different orders wait on each
	// other's rows, and in opposite orders deadlock.
	ids := slices.Sorted(maps.Keys(fresh))
	args := make([]any, 0, 3*len(fresh))
	for _, id := range ids {
		args = append(args, t.id, id, fresh[id])
	}
	q := "INSERT INTO span_resources (tenant_id, id, attributes) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?),", len(fresh)), ",") + " ON CONFLICT DO NOTHING"
	if _, err := t.db.x.ExecContext(ctx, t.rebind(q), args...); err != nil {
		return fmt.Errorf("store resource attributes: %w", err)
	}
	for id := range fresh {
		t.db.resources.Store(resourceKey{t.id, id}, struct{}{})
	}
	return nil
}
