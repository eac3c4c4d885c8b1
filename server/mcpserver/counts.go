package mcpserver

import (
	"context"
	"fmt"
	"strings"

	"github.com/tracekit/tracekit/server/store"
)

// countSample bounds the requests whose spans count_by reads: the newest matching ones.
const countSample = 200

// counts answers count_by: how the matching requests split by an attribute's values, or which keys
// their spans carry.
type counts struct {
	Key     string     `json:"key"`
	Sampled int        `json:"sampled"`           // requests read: the newest matching ones
	Exact   bool       `json:"exact,omitempty"`   // every matching request was read
	Keys    []countKey `json:"keys"`              // the key asked for, or every key for *
	Missing bool       `json:"missing,omitempty"` // no sampled request carries the key
}

type countKey struct {
	Key      string       `json:"key"`
	Indexed  bool         `json:"indexed,omitempty"` // filters on it read the attribute index
	Requests int          `json:"requests"`
	Values   []countValue `json:"values"`
}

type countValue struct {
	Value    string `json:"value"`
	Requests int    `json:"requests"`
}

// countBy reads the attributes of every span of the newest matching requests' traces (a user id set
// by the frontend counts for the database call it caused) and counts requests per value of key, or
// lists every key for "*".
func countBy(ctx context.Context, tn *store.Tenant, q store.TraceQuery, key string) (*counts, error) {
	q.After, q.Limit, q.SortByDuration = nil, countSample+1, false
	hits, err := tn.SearchTraces(ctx, q)
	if err != nil {
		return nil, err
	}
	c := &counts{Key: key, Sampled: min(len(hits), countSample), Exact: len(hits) <= countSample, Keys: []countKey{}}
	ids := make([]string, 0, c.Sampled)
	for _, h := range hits[:c.Sampled] {
		ids = append(ids, h.TraceID)
	}
	top := 10
	if key == "*" {
		top = 3
	}
	keys, err := tn.AttributeSummary(ctx, ids, top)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if key != "*" && k.Key != key {
			continue
		}
		row := countKey{Key: k.Key, Indexed: k.Indexed, Requests: k.Requests, Values: []countValue{}}
		for _, v := range k.Values {
			row.Values = append(row.Values, countValue{capText(v.Value), v.Requests})
		}
		c.Keys = append(c.Keys, row)
		if key == "*" && len(c.Keys) == 25 {
			break
		}
	}
	if key != "*" && len(c.Keys) == 0 && len(ids) > 0 {
		// Say which keys there are instead: the assistant guessed a name.
		c.Missing = true
		for _, k := range keys[:min(len(keys), 25)] {
			c.Keys = append(c.Keys, countKey{Key: k.Key, Indexed: k.Indexed, Requests: k.Requests, Values: []countValue{}})
		}
	}
	return c, nil
}

// capText shortens a value for the answer: ids and names fit, payloads do not.
func capText(s string) string {
	if len(s) > 80 {
		return s[:77] + "…"
	}
	return s
}

func (c *counts) text() string {
	if c == nil {
		return ""
	}
	var b strings.Builder
	scope := fmt.Sprintf("the newest %d matching requests", c.Sampled)
	if c.Exact {
		scope = fmt.Sprintf("all %d matching requests", c.Sampled)
	}
	switch {
	case c.Missing:
		fmt.Fprintf(&b, "No span of %s carries %s; keys they carry:", scope, c.Key)
	case c.Key == "*":
		fmt.Fprintf(&b, "Attribute keys of %s (requests carrying each; top values):\n", scope)
	default:
		fmt.Fprintf(&b, "Requests by %s, over %s:\n", c.Key, scope)
	}
	for _, k := range c.Keys {
		if c.Missing {
			fmt.Fprintf(&b, " %s (%d)", k.Key, k.Requests)
			continue
		}
		fmt.Fprintf(&b, "- %s (%d):", k.Key, k.Requests)
		for _, v := range k.Values {
			fmt.Fprintf(&b, " %s ×%d;", v.Value, v.Requests)
		}
		b.WriteString("\n")
	}
	if c.Missing {
		b.WriteString("\n")
	}
	return b.String()
}
