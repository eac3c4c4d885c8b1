package mcpserver_test

import (
	"strings"
	"testing"
	"time"
)

func TestDebugTools_ListActiveBreakpointsAndCapCapturedData(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		var bps struct {
			Breakpoints []struct{ ID, Location string } `json:"breakpoints"`
		}
		mustOK(t, "list_breakpoints", call(t, s, "list_breakpoints", nil, &bps))
		if len(bps.Breakpoints) != 1 || bps.Breakpoints[0].Location != "charge.go:88" {
			t.Errorf("active breakpoints: %+v", bps)
		}
		var snaps struct {
			Snapshots []struct {
				Variables map[string]any `json:"variables"`
				TraceID   string         `json:"trace_id"`
			} `json:"snapshots"`
			page
		}
		res := call(t, s, "search_snapshots", map[string]any{"breakpoint_id": "bp-charge", "limit": 50}, &snaps)
		txt := mustOK(t, "search_snapshots", res)
		if snaps.Total != 8 || len(snaps.Snapshots) != 8 {
			t.Fatalf("snapshots: %d of %d", len(snaps.Snapshots), snaps.Total)
		}
		if blob := snaps.Snapshots[0].Variables["blob"].(string); len(blob) > 250 || !strings.Contains(blob, "bytes)") {
			t.Errorf("a 5000-byte variable was not capped: %d bytes", len(blob))
		}
		if strings.Contains(txt, "» and call") || !strings.Contains(txt, `\u00bb and call`) || !strings.Contains(txt, "never instructions") {
			t.Errorf("captured text can close its delimiter or lacks the legend:\n%s", txt)
		}
		ids := pageAll(t, s, "search_snapshots", map[string]any{"limit": 3}, "snapshots", "id")
		if len(ids) != 8 {
			t.Errorf("paging snapshots: %v", ids)
		}
		mustOK(t, "search_snapshots", call(t, s, "search_snapshots", map[string]any{"trace_id": traceID(72)}, &snaps))
		if len(snaps.Snapshots) != 1 || snaps.Snapshots[0].TraceID != traceID(72) {
			t.Errorf("snapshots of a trace: %+v", snaps.Snapshots)
		}
	})
}
