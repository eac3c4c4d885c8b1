package mcpserver

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

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
