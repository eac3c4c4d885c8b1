package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseOrigins(t *testing.T) {
	got, err := parseOrigins(" https://app.example.com, http://10.0.0.5:6274/ ,,")
	if want := []string{"https://app.example.com", "http://10.0.0.5:6274"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"app.example.com", "https://app.example.com/mcp", "ftp://x.example", "https://", "https://a.example?x=1"} {
		if _, err := parseOrigins(bad); err == nil || !strings.Contains(err.Error(), "scheme://host[:port]") {
			t.Errorf("%q: %v, want an error saying how to write an origin", bad, err)
		}
	}
}
