package mcpserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/jackc/pgx/v5/pgconn"
)

// The fuzz targets run on their seed corpus (testdata/fuzz) with every go test, and for a few seconds
// each with `make fuzz` (part of `make test`).

var fuzzNow = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// checkResolved fails unless a resolved window is one the tools may query: not empty, not over
// the cap.
func checkResolved(t *testing.T, from, to time.Time) {
	t.Helper()
	if !from.Before(to) || to.Sub(from) > maxWindow {
		t.Fatalf("accepted window %s – %s (%s)", from, to, to.Sub(from))
	}
}

func FuzzWindow(f *testing.F) {
	f.Add("15m", "", "")
	f.Add("", "2026-01-01T00:00:00Z", "2026-01-02")
	f.Add("99999999999999999999d", "", "")
	f.Add("", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z")
	f.Fuzz(func(t *testing.T, since, start, end string) {
		from, to, err := Window{Since: since, Start: start, End: end}.resolve(fuzzNow, time.Hour)
		if err != nil {
			var ae *argError
			if !errors.As(err, &ae) {
				t.Fatalf("not a caller error: %v", err)
			}
			return
		}
		checkResolved(t, from, to)
	})
}

func FuzzCursor(f *testing.F) {
	keys := deriveKeys([]byte("fuzz secret"))
	ctx := withKeys(context.Background(), keys)
	args := searchTracesIn{Service: "checkout"}
	// encodeCursor(ctx, args, fuzzNow.Add(-time.Hour), fuzzNow, map[string]any{"k": 1, "t": "ab"}) once: sealing
	// draws a random nonce, and every fuzzing process must know the one genuine cursor.
	const genuine = "n-K8BdGAQrMUnWuBBg7uNZGthKvyDAtZWJH5KtF_gA_yn7x8atWtLWd44vuZguB4T7V8hQgFgN2POkUNsPcSHQRW5TAQ3Xdhhprt8sICG_1y6rTejodk5gjgDh9zjkM"
	sealed, _ := base64.RawURLEncoding.DecodeString(genuine)
	f.Add(genuine)
	f.Add("eyJxIjoxLCJmIjowLCJ0IjoxLCJwIjp7fX0") // a readable cursor of the old kind
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		var pos struct {
			K int64  `json:"k"`
			T string `json:"t"`
		}
		from, to, paging, err := pageWindow(ctx, Window{}, Page{Cursor: s}, args, &pos, fuzzNow, time.Hour)
		if err != nil {
			var ae *argError
			if !errors.As(err, &ae) {
				t.Fatalf("not a caller error: %v", err)
			}
			return
		}
		checkResolved(t, from, to)
		if !paging {
			if s != "" {
				t.Fatalf("cursor %q neither refused nor used", s)
			}
			return
		}
		if b, _ := base64.RawURLEncoding.DecodeString(s); !bytes.Equal(b, sealed) || pos.K != 1 || pos.T != "ab" {
			t.Fatalf("accepted a cursor this server did not issue: %q (position %+v)", s, pos)
		}
	})
}

func FuzzDecodeArgs(f *testing.F) {
	in, err := jsonschema.For[searchTracesIn](nil)
	if err != nil {
		f.Fatal(err)
	}
	resolved, err := in.Resolve(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(`{"service":"checkout","attributes":{"http.route":"/pay","http.response.status_code":500}}`)
	f.Add(`{"service":"pay\u0000ment"}`)
	f.Add(`{"attributes":{"a\u0000":[1,{"b":null}]}}`)
	f.Add(`null`)
	f.Add(`[1,2]`)
	f.Fuzz(func(t *testing.T, raw string) {
		var dst searchTracesIn
		key, err := decodeArgs(json.RawMessage(raw), resolved, &dst)
		if err != nil {
			return
		}
		if strings.ContainsRune(key, 0) || strings.Contains(key, `\u0000`) {
			t.Fatalf("accepted a NUL character: %s", key)
		}
		// The canonical form is a fixed point: identical calls share one key.
		var again searchTracesIn
		if key2, err := decodeArgs(json.RawMessage(key), resolved, &again); err != nil || key2 != key {
			t.Fatalf("canonical form %s decodes to %s, %v", key, key2, err)
		}
		if _, err := attributeFilters(dst.Attributes); err != nil {
			var ae *argError
			if !errors.As(err, &ae) {
				t.Fatalf("not a caller error: %v", err)
			}
		}
	})
}

func TestRefusedValue_IsTheCallersAndUnavailabilityIsNot(t *testing.T) {
	data := fmt.Errorf("search: %w", &pgconn.PgError{Code: "22021", Message: `invalid byte sequence for encoding "UTF8": 0x00`})
	if msg, ok := refusedValue(data); !ok || !strings.Contains(msg, "UTF8") {
		t.Errorf("data exception: %q %v", msg, ok)
	}
	for _, err := range []error{
		&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"},
		&pgconn.PgError{Code: "08006", Message: "connection failure"},
		context.DeadlineExceeded,
	} {
		if _, ok := refusedValue(err); ok {
			t.Errorf("%v taken for the caller's mistake", err)
		}
	}
}

// FuzzAnomalyRef checks that get_rca accepts only anomaly ids the server issued, not other kinds.
func FuzzAnomalyRef(f *testing.F) {
	keys := deriveKeys([]byte("fuzz secret"))
	f.Add(keys.anomalyRef(42))
	f.Add(keys.ref(kindSnapshot, 42))
	f.Add("42")
	f.Add("AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := keys.parseAnomalyRef(s)
		if !ok {
			return
		}
		b, _ := base64.RawURLEncoding.DecodeString(s)
		if again, _ := base64.RawURLEncoding.DecodeString(keys.anomalyRef(id)); id <= 0 || !bytes.Equal(b, again) {
			t.Fatalf("accepted %q as anomaly %d, which the server would show as %q", s, id, keys.anomalyRef(id))
		}
	})
}
