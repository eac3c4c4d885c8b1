package mcpserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/store"
)

// Issue 12 item 8: a condition compares a variable with the literal it expects, which may be the
// secret itself; list_breakpoints must not hand it to the model.
func TestListBreakpoints_RedactsSecretsInConditions(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		if err := e.acme.CreateBreakpoint(context.Background(), store.Breakpoint{ID: "bp-login", Service: "auth-service", File: "login.go",
			Line: 30, Condition: `password == 'hunter2' && user.email != "alice@example.com" && attempts > 3`, HitLimit: 5,
			CreatedNS: time.Now().UnixNano()}); err != nil {
			t.Fatal(err)
		}
		s := e.connect(t, e.keyA)
		var bps struct {
			Breakpoints []struct{ Condition string } `json:"breakpoints"`
		}
		txt := mustOK(t, "list_breakpoints", call(t, s, "list_breakpoints", nil, &bps))
		for _, secret := range []string{"hunter2", "alice@example.com"} {
			if strings.Contains(txt, secret) || len(bps.Breakpoints) != 1 || strings.Contains(bps.Breakpoints[0].Condition, secret) {
				t.Errorf("list_breakpoints shows %s: %+v\n%s", secret, bps, txt)
			}
		}
		if len(bps.Breakpoints) != 1 || !strings.Contains(bps.Breakpoints[0].Condition, "attempts > 3") {
			t.Errorf("the condition's harmless part was lost: %+v", bps)
		}
	})
}
