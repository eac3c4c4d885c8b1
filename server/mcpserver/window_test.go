package mcpserver

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 12, 4, 12, 30, 15, 123456789, time.UTC)

func TestParseSince(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "15m", want: 15 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "1.5h", want: 90 * time.Minute},
		{in: " 24H ", want: 24 * time.Hour},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "2w", want: 14 * 24 * time.Hour},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "", wantErr: "is not a duration"},
		{in: "yesterday", wantErr: "is not a duration: use e.g. 15m"},
		{in: "5y", wantErr: "is not a duration"},
		{in: "-5m", wantErr: "is not a duration"},
		{in: "0m", wantErr: "must be longer than zero"},
	} {
		got, err := parseSince(tc.in)
		if tc.wantErr != "" {
			if !isArgError(err, tc.wantErr) {
				t.Errorf("parseSince(%q) = %v, %v; want an argument error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseSince(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestWindowResolve(t *testing.T) {
	now := testNow.Truncate(time.Second)
	for _, tc := range []struct {
		name     string
		w        Window
		from, to time.Time
		wantErr  string
	}{
		{name: "default", w: Window{}, from: now.Add(-time.Hour), to: now},
		{name: "since", w: Window{Since: "24h"}, from: now.Add(-24 * time.Hour), to: now},
		{name: "start and end win over since", w: Window{Since: "1h", Start: "2026-12-01T00:00:00Z", End: "2026-12-02"},
			from: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), to: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)},
		{name: "since counts back from end", w: Window{Since: "30m", End: "2026-12-01T10:00:00+01:00"},
			from: time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC), to: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)},
		{name: "start alone runs to now", w: Window{Start: "2026-12-04T12:00:00Z"}, from: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC), to: now},
		{name: "start after end", w: Window{Start: "2026-12-02", End: "2026-12-01"}, wantErr: "the window is empty"},
		{name: "longer than the cap", w: Window{Since: "401d"}, wantErr: "longer than 400 days"},
		{name: "bad start", w: Window{Start: "last tuesday"}, wantErr: `start "last tuesday" is not a time`},
		{name: "bad end", w: Window{End: "12/01/2026"}, wantErr: `end "12/01/2026" is not a time`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to, err := tc.w.resolve(testNow, time.Hour)
			if tc.wantErr != "" {
				if !isArgError(err, tc.wantErr) {
					t.Fatalf("got %v – %v, %v; want an argument error containing %q", from, to, err, tc.wantErr)
				}
				return
			}
			if err != nil || !from.Equal(tc.from) || !to.Equal(tc.to) {
				t.Errorf("got %v – %v, %v; want %v – %v", from, to, err, tc.from, tc.to)
			}
		})
	}
}

func TestMinuteWindow_DropsThePartialMinutes(t *testing.T) {
	from, to, err := minuteWindow(testNow.Add(-10*time.Minute), testNow)
	if err != nil || !from.Equal(time.Date(2026, 12, 4, 12, 20, 0, 0, time.UTC)) || !to.Equal(time.Date(2026, 12, 4, 12, 30, 0, 0, time.UTC)) {
		t.Errorf("got %v – %v, %v", from, to, err)
	}
	if _, _, err := minuteWindow(testNow.Add(-10*time.Second), testNow); !isArgError(err, "at least one whole minute") {
		t.Errorf("a window within one minute: %v", err)
	}
}

// isArgError reports whether err is a caller's mistake whose message contains want.
func isArgError(err error, want string) bool {
	var ae *argError
	return errors.As(err, &ae) && strings.Contains(ae.Error(), want)
}
