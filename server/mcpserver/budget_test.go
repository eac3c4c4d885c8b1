package mcpserver

import (
	"strings"
	"testing"
)

func TestBudget(t *testing.T) {
	for _, tc := range []struct{ maxTokens, chars int }{{0, defaultMaxTokens * 4}, {10, minMaxTokens * 4}, {1 << 20, hardMaxTokens * 4}, {2500, 10000}} {
		if got := newBudget(tc.maxTokens).max; got != tc.chars {
			t.Errorf("newBudget(%d).max = %d, want %d", tc.maxTokens, got, tc.chars)
		}
	}
	b := newBudget(minMaxTokens) // 4,000 characters, 2,400 after the overhead
	huge := strings.Repeat("x", 3000)
	if !b.fit(nil, huge) {
		t.Error("the first item is always admitted, so paging progresses")
	}
	if b.fit(nil, "x") {
		t.Error("an item past the budget was admitted")
	}
	b = newBudget(minMaxTokens)
	n := 0
	for b.fit(nil, strings.Repeat("x", 94)) { // 100 characters with "null" and the separator
		n++
	}
	if n != 24 {
		t.Errorf("%d items of 100 characters fit 2,400, want 24", n)
	}
}
