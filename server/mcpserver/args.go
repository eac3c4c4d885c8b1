package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// argError is a mistake in a tool's arguments. Its message says what to change; the SDK turns it
// into an isError result the assistant can act on.
type argError struct{ msg string }

func (e *argError) Error() string { return e.msg }

func badArg(format string, args ...any) error { return &argError{fmt.Sprintf(format, args...)} }

// Window is the time range argument shared by the tools that read history.
type Window struct {
	Since string `json:"since,omitempty" jsonschema:"e.g. 30m, 24h, 7d"`
	Start string `json:"start,omitempty" jsonschema:"RFC 3339; wins over since"`
	End   string `json:"end,omitempty" jsonschema:"RFC 3339"`
}

// maxWindow bounds a window so that a typo ("9999d") cannot start a scan of all history.
const maxWindow = 400 * 24 * time.Hour

var sinceRE = regexp.MustCompile(`^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$`)

func parseSince(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	m := sinceRE.FindStringSubmatch(s)
	if m == nil {
		return 0, badArg("since %q is not a duration: use e.g. 15m, 1h, 24h or 7d, or give start/end in RFC 3339", s)
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
		"d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
	d := time.Duration(n * float64(unit))
	if d <= 0 {
		return 0, badArg("since %q must be longer than zero", s)
	}
	return d, nil
}

func parseTime(name, s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, badArg("%s %q is not a time: use RFC 3339 like 2025-01-31T14:00:00Z", name, s)
}

// resolve turns the arguments into [from, to). Explicit start and end win over since; since measures
// back from end when only end is given. def applies when since is empty.
func (w Window) resolve(now time.Time, def time.Duration) (from, to time.Time, err error) {
	defer func() { from, to = from.Truncate(time.Second), to.Truncate(time.Second) }() // windows are stated to the second
	to = now.UTC()
	if w.End != "" {
		if to, err = parseTime("end", w.End); err != nil {
			return
		}
	}
	if w.Start != "" {
		if from, err = parseTime("start", w.Start); err != nil {
			return
		}
	} else {
		d := def
		if w.Since != "" {
			if d, err = parseSince(w.Since); err != nil {
				return
			}
		}
		from = to.Add(-d)
	}
	err = checkWindow(from, to)
	return
}

// checkWindow refuses an empty window and one longer than maxWindow.
func checkWindow(from, to time.Time) error {
	switch {
	case !from.Before(to):
		return badArg("the window is empty: start %s is not before end %s", stamp(from), stamp(to))
	case to.Sub(from) > maxWindow:
		return badArg("the window %s is longer than %d days: narrow since or start/end", to.Sub(from).Round(time.Hour), int(maxWindow.Hours()/24))
	}
	return nil
}

// minuteWindow narrows a window to whole minutes, the resolution of the metric rollups that service
// statistics come from; the partial minute at the end is left out rather than undercounted.
func minuteWindow(from, to time.Time) (time.Time, time.Time, error) {
	from, to = from.Truncate(time.Minute), to.Truncate(time.Minute)
	if !from.Before(to) {
		return from, to, badArg("service statistics are kept per minute: use a window of at least one whole minute (e.g. since=15m)")
	}
	return from, to, nil
}

// TimeRange is the resolved UTC window an answer covers.
type TimeRange struct {
	From string `json:"from,omitempty"`
	To   string `json:"to"`
}

func timeRange(from, to time.Time) TimeRange {
	r := TimeRange{To: stamp(to)}
	if !from.IsZero() {
		r.From = stamp(from)
	}
	return r
}

func (r TimeRange) String() string {
	if r.From == "" {
		return "as of " + r.To
	}
	return r.From + " – " + r.To
}

// stamp formats a window bound; seconds are precise enough and shorter.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// at formats an event time to the millisecond.
func at(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// msOf converts nanoseconds to milliseconds rounded to 0.1 ms.
func msOf(ns int64) float64 { return float64(ns/100000) / 10 }

// Page is the paging and sizing arguments of list tools.
type Page struct {
	Limit     int    `json:"limit,omitempty"`
	Cursor    string `json:"cursor,omitempty"`
	MaxTokens int    `json:"max_tokens,omitempty"`
}

// Token budgets, in characters/4 as assistants count them. The hard cap stays well below the 25,000
// tokens at which Claude Code refuses a tool result.
const (
	defaultMaxTokens = 4000
	minMaxTokens     = 1000
	hardMaxTokens    = 20000
)

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

// budget is what is left of an answer's size, in characters. Items are admitted while they fit;
// the first item always is, so paging progresses (items are capped well below the smallest budget).
type budget struct {
	max   int // characters
	left  int
	items int
}

// overhead is reserved for the answer's header, paging fields and suggestions.
const overhead = 1600

func newBudget(maxTokens int) *budget {
	max := clamp(maxTokens, minMaxTokens, hardMaxTokens, defaultMaxTokens) * 4
	return &budget{max: max, left: max - overhead}
}

// limit is the size the whole answer must keep to, in characters.
func (b *budget) limit() int { return b.max }

// answerSize is what an answer costs an assistant: its text and its structured content.
func answerSize(out any, text string) int {
	j, _ := json.Marshal(out)
	return len(j) + len(text)
}

// fit admits an item whose structured form is v and whose text line is line.
func (b *budget) fit(v any, line string) bool {
	j, _ := json.Marshal(v)
	n := len(j) + len(line) + 2
	if b.items > 0 && n > b.left {
		return false
	}
	b.left -= n
	b.items++
	return true
}

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

// errInternal hides a storage failure's detail from the assistant (it is logged) but says what to do.
var errInternal = errors.New("the observability database did not answer; try again in a moment")
