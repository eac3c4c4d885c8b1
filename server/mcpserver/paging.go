package mcpserver

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"strings"
	"time"
)

// Page is the paging and sizing arguments of list tools.
type Page struct {
	Limit     int    `json:"limit,omitempty"`
	Cursor    string `json:"cursor,omitempty"`
	MaxTokens int    `json:"max_tokens,omitempty"`
}

// List is the paging summary every list answer carries.
type List struct {
	Window   TimeRange `json:"window"`
	Returned int       `json:"returned"`
	// Total counts matching rows, up to a cap (TotalAtLeast), or estimates them from a sample of a
	// busy window (TotalEstimated).
	Total          int    `json:"total"`
	TotalAtLeast   bool   `json:"total_at_least,omitempty"`
	TotalEstimated bool   `json:"total_estimated,omitempty"`
	Truncated      bool   `json:"truncated"`
	NextCursor     string `json:"next_cursor,omitempty"`
	Note           string `json:"note,omitempty"`
	Next           []Call `json:"next,omitempty"`
}

// Call suggests a follow-up tool call.
type Call struct {
	Tool string         `json:"tool"`
	Args map[string]any `json:"args"`
	Why  string         `json:"why,omitempty"`
}

// countCap bounds how far a list's total is counted.
const countCap = 1000

// offsetPage fills a page of a list paged by position: rows from offset on, made by row, up to limit
// that fit b, and their text lines. next is the position of the first row left out, or -1 when none
// was.
func offsetPage[R interface{ line() string }](n, offset, limit int, b *budget, row func(i int) R) (page []R, text string, next int) {
	page = []R{}
	var lines strings.Builder
	for i := offset; i < n; i++ {
		r := row(i)
		line := r.line()
		if len(page) == limit || !b.fit(r, line) {
			return page, lines.String(), i
		}
		page = append(page, r)
		lines.WriteString(line)
	}
	return page, lines.String(), -1
}

func clamp(v, lo, hi, def int) int {
	switch {
	case v == 0:
		return def
	case v < lo:
		return lo
	case v > hi:
		return hi
	}
	return v
}

// cursor is the next_cursor, sealed with the tenant's key (so it can be neither read nor altered):
// the window of the first page in unix seconds (so later pages cover the same rows), a hash of the
// filters (so it is not replayed with other ones), and the position after the last returned row.
type cursor struct {
	Q   uint32          `json:"q"`
	F   int64           `json:"f"`
	T   int64           `json:"t"`
	Pos json.RawMessage `json:"p"`
}

// pagingFields do not change which rows a query selects, so they are left out of the filter hash.
var pagingFields = []string{"cursor", "limit", "max_tokens", "since", "start", "end"}

func filterHash(args any) uint32 {
	var m map[string]any
	b, _ := json.Marshal(args)
	_ = json.Unmarshal(b, &m)
	for _, k := range pagingFields {
		delete(m, k)
	}
	b, _ = json.Marshal(m) // map keys marshal sorted
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

func encodeCursor(ctx context.Context, args any, from, to time.Time, pos any) string {
	p, _ := json.Marshal(pos)
	b, _ := json.Marshal(cursor{Q: filterHash(args), F: from.Unix(), T: to.Unix(), Pos: p})
	return keysOf(ctx).seal(b)
}

// decodeCursor reads s into pos and returns the window it pins. An empty s returns ok false.
func decodeCursor(ctx context.Context, s string, args any, pos any) (from, to time.Time, ok bool, err error) {
	if s == "" {
		return
	}
	var c cursor
	b, sealed := keysOf(ctx).open(s)
	if !sealed || json.Unmarshal(b, &c) != nil || json.Unmarshal(c.Pos, pos) != nil {
		return from, to, false, badArg("cursor is not one this server issued: pass next_cursor unchanged, or omit cursor for the first page")
	}
	if c.Q != filterHash(args) {
		return from, to, false, badArg("cursor belongs to a query with other filters: repeat the previous call's arguments with the cursor, or omit cursor to start over")
	}
	return time.Unix(c.F, 0).UTC(), time.Unix(c.T, 0).UTC(), true, nil
}

// pageWindow resolves the window of a list call: the cursor's when paging on, else the arguments'.
// The cursor's window is checked as the arguments' are, should a key ever leak.
func pageWindow(ctx context.Context, w Window, p Page, args any, pos any, now time.Time, def time.Duration) (from, to time.Time, paging bool, err error) {
	from, to, paging, err = decodeCursor(ctx, p.Cursor, args, pos)
	if err != nil {
		return
	}
	if paging {
		err = checkWindow(from, to)
		return
	}
	from, to, err = w.resolve(now, def)
	return
}
