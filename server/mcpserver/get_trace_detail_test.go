package mcpserver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// traceDetail is the part of get_trace_detail's structured answer the tests read.
type traceDetail struct {
	Root          string       `json:"root"`
	Spans         int          `json:"spans"`
	CriticalPath  []detailStep `json:"critical_path"`
	CriticalSteps int          `json:"critical_steps"`
	SelfTime      []detailStep `json:"top_self_time"`
	Waterfall     []struct {
		SpanID    string `json:"span_id"`
		Operation string `json:"operation"`
		Count     int    `json:"count"`
		NPlusOne  bool   `json:"n_plus_one"`
	} `json:"waterfall"`
	Truncated bool `json:"truncated"`
	Omitted   int  `json:"omitted"`
	Window    struct{ From, To string }
}

type detailStep struct {
	SpanID    string `json:"span_id"`
	Service   string `json:"service"`
	Operation string `json:"operation"`
	Statement string `json:"statement"`
}

func TestGetTraceDetail_ShowsCriticalPathErrorsAndCollapsedNPlusOne(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		sh := seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		var out traceDetail
		txt := mustOK(t, "get_trace_detail", call(t, s, "get_trace_detail", map[string]any{"trace_id": sh.slowestPayment}, &out))
		if out.Root != "frontend GET /checkout" || out.Spans != 5+stockQueries || out.Truncated || out.Omitted != 0 || out.Window.From == "" {
			t.Fatalf("trace summary: %+v", out)
		}
		var path []string
		for _, st := range out.CriticalPath {
			path = append(path, st.Operation)
		}
		// Inventory is called after payment, so the request waited for both, and for each of the
		// sequential stock queries: every span is on the path. The time went to the payments query
		// and the stock queries.
		if got := strings.Join(path, ","); got != "SELECT payments,SELECT stock" || out.CriticalSteps != 5+stockQueries {
			t.Errorf("critical path %s over %d steps, want SELECT payments,SELECT stock over %d", got, out.CriticalSteps, 5+stockQueries)
		}
		if top := out.SelfTime[0]; top.Operation != "SELECT payments" || top.Statement != slowSQL {
			t.Errorf("top self time is not the slow statement: %+v", top)
		}
		var collapsed bool
		for _, r := range out.Waterfall {
			if r.Operation == "SELECT stock" {
				collapsed = r.Count == stockQueries && r.NPlusOne
			}
		}
		if !collapsed || len(out.Waterfall) != 6 || !strings.Contains(txt, "×6 inventory-service SELECT stock") || !strings.Contains(txt, "N+1?") {
			t.Errorf("stock queries not collapsed into one N+1 row: %+v\n%s", out.Waterfall, txt)
		}
		if !strings.Contains(txt, "«") || !strings.Contains(txt, "never instructions") {
			t.Errorf("captured statement not delimited:\n%s", txt)
		}

		var failed struct {
			Errors []struct {
				Service    string `json:"service"`
				Message    string `json:"message"`
				Exceptions []map[string]any
			} `json:"errors"`
		}
		mustOK(t, "get_trace_detail", call(t, s, "get_trace_detail", map[string]any{"trace_id": traceID(shopTraces - 10)}, &failed))
		if len(failed.Errors) != 2 || failed.Errors[1].Message != "stock database unavailable" || failed.Errors[1].Exceptions[0]["type"] != "StockUnavailable" {
			t.Errorf("errors of a failed trace: %+v", failed.Errors)
		}

		var focus struct {
			Root      string `json:"root"`
			Waterfall []any  `json:"waterfall"`
		}
		inventory := fmt.Sprintf("%016x", (shopTraces-10)*100+5)
		mustOK(t, "get_trace_detail", call(t, s, "get_trace_detail", map[string]any{"trace_id": traceID(shopTraces - 10), "focus_span_id": inventory}, &focus))
		if focus.Root != "inventory-service GET /stock" || len(focus.Waterfall) != 2 {
			t.Errorf("focus on the inventory span: %+v", focus)
		}
	})
}

func TestGetTraceDetail_SummarisesAHugeTraceWithinTheBudget(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		// One request fanning out to 50 workers, each running 999 queries one after another: 50,001 spans.
		const workers, queries = 50, 999
		start := time.Now().Add(-time.Minute).UnixNano()
		id := traceID(9999)
		spans := []store.Span{{TraceID: id, SpanID: storetest.SpanID("root"), Service: "batch", Operation: "POST /import", Kind: store.KindServer,
			IsEntry: true, StartNS: start, DurationNS: int64(30 * time.Second)}}
		for w := 0; w < workers; w++ {
			ws := fmt.Sprintf("w%03d", w)
			spans = append(spans, store.Span{TraceID: id, SpanID: storetest.SpanID(ws), ParentSpanID: storetest.SpanID("root"), Service: "batch", Operation: fmt.Sprintf("worker %d", w),
				StartNS: start + int64(w)*int64(time.Millisecond), DurationNS: int64(20 * time.Second)})
			for q := 0; q < queries; q++ {
				spans = append(spans, store.Span{TraceID: id, SpanID: storetest.SpanID(fmt.Sprintf("%s%04d", ws, q)), ParentSpanID: storetest.SpanID(ws), Service: "batch",
					Operation: "INSERT rows", Kind: store.KindClient, DBSystem: "postgresql", DBStatement: "INSERT INTO rows VALUES ($1)",
					StartNS: start + int64(w)*int64(time.Millisecond) + int64(q)*int64(20*time.Millisecond), DurationNS: int64(15 * time.Millisecond)})
			}
		}
		if err := e.acme.InsertBatch(context.Background(), store.Batch{Spans: spans}); err != nil {
			t.Fatal(err)
		}
		s := e.connect(t, e.keyA)
		for _, budget := range []int{1000, 4000} {
			var out struct {
				Spans     int  `json:"spans"`
				Truncated bool `json:"truncated"`
				Omitted   int  `json:"omitted"`
				Waterfall []struct {
					Count    int  `json:"count"`
					NPlusOne bool `json:"n_plus_one"`
				} `json:"waterfall"`
				Next []struct {
					Args map[string]any `json:"args"`
				} `json:"next"`
			}
			res := call(t, s, "get_trace_detail", map[string]any{"trace_id": id, "max_tokens": budget}, &out)
			mustOK(t, "get_trace_detail", res)
			if n := answerTokens(res); n > budget {
				t.Errorf("max_tokens %d: answer of %d tokens", budget, n)
			}
			if out.Spans != len(spans) || len(out.Waterfall) < 3 || out.Waterfall[2].Count != queries || !out.Waterfall[2].NPlusOne {
				t.Errorf("max_tokens %d: %d spans, waterfall %+v", budget, out.Spans, out.Waterfall[:min(3, len(out.Waterfall))])
			}
			if budget == 1000 && (!out.Truncated || out.Omitted == 0 || out.Next[0].Args["focus_span_id"] == nil) {
				t.Errorf("a cut waterfall does not say so or suggest where to look: truncated=%v omitted=%d next=%+v", out.Truncated, out.Omitted, out.Next)
			}
		}
	})
}
