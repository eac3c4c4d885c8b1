package mcpserver

import "testing"

func TestSlowVersion(t *testing.T) {
	v := func(name string, requests int64, p50ms, p95ms int64) versionRow {
		return versionRow{Version: name, Requests: requests, p50NS: p50ms * 1e6, p95NS: p95ms * 1e6}
	}
	for _, tc := range []struct {
		name string
		vs   []versionRow
		want string // "" for none
	}{
		{name: "one version", vs: []versionRow{v("1.0", 100, 50, 200)}},
		{name: "twice as slow at the median", vs: []versionRow{v("1.0", 100, 50, 200), v("1.1", 100, 100, 300)}, want: "1.1"},
		{name: "twice as slow at p95 only", vs: []versionRow{v("1.0", 100, 50, 200), v("1.1", 100, 60, 400)}, want: "1.1"},
		{name: "alike", vs: []versionRow{v("1.0", 100, 50, 200), v("1.1", 100, 70, 300)}},
		{name: "the slowest by median is the one named", vs: []versionRow{v("1.0", 100, 50, 200), v("1.1", 100, 120, 300), v("1.2", 100, 110, 900)}, want: "1.1"},
		{name: "too few requests to count", vs: []versionRow{v("1.0", 100, 50, 200), v("1.1", 5, 500, 900)}},
		{name: "nothing to compare a slow version with", vs: []versionRow{v("1.0", 5, 50, 200), v("1.1", 100, 500, 900)}},
	} {
		got := slowVersion(tc.vs)
		name := ""
		if got != nil {
			name = got.Version
		}
		if name != tc.want {
			t.Errorf("%s: slowVersion = %q, want %q", tc.name, name, tc.want)
		}
	}
}
