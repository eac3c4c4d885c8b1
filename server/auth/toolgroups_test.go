package auth

import (
	"slices"
	"strings"
	"testing"
)

func TestOAuthTokens_ToolGroupsInTheTokenRestrictTheTools(t *testing.T) {
	is := newIssuer(t)
	token := is.sign(t, is.keys[0], is.claims(func(c map[string]any) {
		c["groups"] = []string{TenantGroup("acme"), ScopeGroup("read"), ToolGroupClaim("traces"), ToolGroupClaim("llm")}
	}))
	p, err := is.verifier().Authenticate(bearer(token))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.ToolGroups, []string{"traces", "llm"}) {
		t.Fatalf("tool groups %v", p.ToolGroups)
	}
	for tool, want := range map[string]bool{"search_traces": true, "get_llm_stats": true, "search_snapshots": false, "get_rca": false, "no_such_tool": false} {
		if got := p.MayUseTool(tool); got != want {
			t.Errorf("%s: %v, want %v", tool, got, want)
		}
	}
	msg := p.ToolRefusal("search_snapshots")
	for _, want := range []string{"search_snapshots", `"Live-debugging snapshots"`, "Traces and service health, LLM usage and cost", "sign in to TraceKit again"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q lacks %q", msg, want)
		}
	}
	if p.ToolRefusal("search_traces") != "" {
		t.Error("a granted tool is refused")
	}

	// A token without tool groups (and an API key) opens every tool.
	p, err = is.verifier().Authenticate(bearer(is.sign(t, is.keys[0], is.claims(nil))))
	if err != nil || p.ToolGroups != nil || !p.MayUseTool("search_snapshots") {
		t.Fatalf("token without tool groups: %+v %v", p, err)
	}
}

func TestToolGroups_EachToolInExactlyOneGroup(t *testing.T) {
	seen := map[string]string{}
	for _, g := range ToolGroups {
		if !IsToolGroup(g.ID) || g.Title == "" || len(g.Tools) == 0 {
			t.Errorf("group %+v", g)
		}
		for _, tool := range g.Tools {
			if other, dup := seen[tool]; dup {
				t.Errorf("%s is in %s and %s", tool, other, g.ID)
			}
			seen[tool] = g.ID
		}
	}
}
