package mcpserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCursor(t *testing.T) {
	acme := withKeys(context.Background(), deriveKeys([]byte("acme's secret")))
	globex := withKeys(context.Background(), deriveKeys([]byte("globex's secret")))
	args := searchTracesIn{Service: "checkout"}
	from, to := testNow.Add(-time.Hour).Truncate(time.Second), testNow.Truncate(time.Second)
	issued := encodeCursor(acme, args, from, to, map[string]any{"k": 7, "t": "ab"})
	tampered := []byte(issued)
	tampered[len(tampered)/2] ^= 1
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		cursor  string
		args    searchTracesIn
		wantErr string
	}{
		{name: "as issued", ctx: acme, cursor: issued, args: args},
		{name: "with other paging arguments", ctx: acme, cursor: issued, args: searchTracesIn{Service: "checkout", Window: Window{Since: "7d"}}},
		{name: "altered", ctx: acme, cursor: string(tampered), args: args, wantErr: "not one this server issued"},
		{name: "another tenant's", ctx: globex, cursor: issued, args: args, wantErr: "not one this server issued"},
		{name: "not base64", ctx: acme, cursor: "!!", args: args, wantErr: "not one this server issued"},
		{name: "with other filters", ctx: acme, cursor: issued, args: searchTracesIn{Service: "payment"}, wantErr: "other filters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pos struct {
				K int    `json:"k"`
				T string `json:"t"`
			}
			f, to2, ok, err := decodeCursor(tc.ctx, tc.cursor, tc.args, &pos)
			if tc.wantErr != "" {
				if !isArgError(err, tc.wantErr) {
					t.Fatalf("got ok=%v, %v; want an argument error containing %q", ok, err, tc.wantErr)
				}
				return
			}
			if err != nil || !ok || !f.Equal(from) || !to2.Equal(to) || pos.K != 7 || pos.T != "ab" {
				t.Errorf("got %v – %v ok=%v pos=%+v, %v", f, to2, ok, pos, err)
			}
		})
	}
	if _, _, ok, err := decodeCursor(acme, "", args, &struct{}{}); ok || err != nil {
		t.Errorf("no cursor: ok=%v, %v; want the first page", ok, err)
	}
}

func TestPageWindow_ChecksTheCursorsWindowLikeTheArguments(t *testing.T) {
	ctx := withKeys(context.Background(), deriveKeys([]byte("secret")))
	args := searchTracesIn{}
	wide := encodeCursor(ctx, args, testNow.Add(-2*maxWindow), testNow, 0)
	if _, _, _, err := pageWindow(ctx, Window{}, Page{Cursor: wide}, args, new(int), testNow, time.Hour); !isArgError(err, "longer than") {
		t.Errorf("a cursor pinning a window over the cap: %v", err)
	}
	from, to, paging, err := pageWindow(ctx, Window{Since: "2h"}, Page{}, args, new(int), testNow, time.Hour)
	if err != nil || paging || to.Sub(from) != 2*time.Hour {
		t.Errorf("first page: %v – %v paging=%v, %v", from, to, paging, err)
	}
}

type testRow int

func (r testRow) line() string { return fmt.Sprintf("row %d\n", int(r)) }

func TestOffsetPage(t *testing.T) {
	row := func(i int) testRow { return testRow(i) }
	for _, tc := range []struct {
		name                 string
		n, offset, limit     int
		maxTokens            int
		wantRows, wantNext   int
		wantFirst, wantLines string
	}{
		{name: "a page of limit rows", n: 10, offset: 0, limit: 3, wantRows: 3, wantNext: 3, wantFirst: "row 0\n"},
		{name: "the last page", n: 10, offset: 8, limit: 3, wantRows: 2, wantNext: -1, wantFirst: "row 8\n"},
		{name: "past the end", n: 10, offset: 10, limit: 3, wantRows: 0, wantNext: -1},
		// 2,400 characters: rows 0–9 cost 9 (JSON, line, separator), 10–99 cost 11, 100– cost 13.
		{name: "the budget ends the page", n: 1000, offset: 0, limit: 1000, maxTokens: minMaxTokens, wantRows: 201, wantNext: 201, wantFirst: "row 0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, text, next := offsetPage(tc.n, tc.offset, tc.limit, newBudget(tc.maxTokens), row)
			if len(page) != tc.wantRows || next != tc.wantNext || !strings.HasPrefix(text, tc.wantFirst) || strings.Count(text, "\n") != len(page) {
				t.Errorf("%d rows, next %d, text %.20q…; want %d rows, next %d", len(page), next, text, tc.wantRows, tc.wantNext)
			}
		})
	}
}

func TestClamp(t *testing.T) {
	for _, tc := range []struct{ v, want int }{{0, 10}, {-5, 1}, {1, 1}, {50, 50}, {500, 100}} {
		if got := clamp(tc.v, 1, 100, 10); got != tc.want {
			t.Errorf("clamp(%d) = %d, want %d", tc.v, got, tc.want)
		}
	}
}
