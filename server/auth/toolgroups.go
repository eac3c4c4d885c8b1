package auth

import (
	"fmt"
	"slices"
	"strings"
)

// ToolGroup is a set of MCP tools that a person grants an assistant together, on the sign-in page.
// The groups granted travel in the access token's "groups" claim as ToolGroupClaim entries.
type ToolGroup struct {
	ID string
	// Title names the group on the sign-in page and in refusals.
	Title string
	Tools []string
}

// ToolGroups holds every MCP tool exactly once. Live debugging has a group of its own because
// snapshots carry data captured inside applications (variables, stacks), which a person may not
// want to reach a model provider.
var ToolGroups = []ToolGroup{
	{ID: "traces", Title: "Traces and service health", Tools: []string{"list_services", "search_traces", "get_trace_detail"}},
	{ID: "metrics", Title: "Metrics, alerts and anomalies", Tools: []string{"get_service_metrics", "get_active_alerts", "search_anomalies", "get_rca"}},
	{ID: "llm", Title: "LLM usage and cost", Tools: []string{"search_llm_calls", "get_llm_stats"}},
	{ID: "debugging", Title: "Live-debugging snapshots", Tools: []string{"list_breakpoints", "search_snapshots"}},
}

const toolGroupPrefix = "tools:"

// ToolGroupClaim is the groups-claim entry granting the tool group id; it is also the OAuth scope
// the token response reports for it.
func ToolGroupClaim(id string) string { return toolGroupPrefix + id }

// IsToolGroup reports whether id names a tool group.
func IsToolGroup(id string) bool {
	return slices.ContainsFunc(ToolGroups, func(g ToolGroup) bool { return g.ID == id })
}

func toolGroupOf(tool string) (ToolGroup, bool) {
	for _, g := range ToolGroups {
		if slices.Contains(g.Tools, tool) {
			return g, true
		}
	}
	return ToolGroup{}, false
}

// MayUseTool reports whether the caller may call tool: any tool, unless its sign-in granted only
// some tool groups.
func (p Principal) MayUseTool(tool string) bool {
	if p.ToolGroups == nil {
		return true
	}
	g, ok := toolGroupOf(tool)
	return ok && slices.Contains(p.ToolGroups, g.ID)
}

// ToolRefusal says why the caller may not call tool and how to get it, or is "" when it may.
func (p Principal) ToolRefusal(tool string) string {
	if p.MayUseTool(tool) {
		return ""
	}
	var granted []string
	for _, g := range ToolGroups {
		if slices.Contains(p.ToolGroups, g.ID) {
			granted = append(granted, g.Title)
		}
	}
	have := "none"
	if len(granted) > 0 {
		have = strings.Join(granted, ", ")
	}
	g, ok := toolGroupOf(tool)
	if !ok {
		return fmt.Sprintf("%s is not among the tools this sign-in granted (granted: %s).", tool, have)
	}
	return fmt.Sprintf("%s needs %q, which the person who signed in did not grant (granted: %s). "+
		"To use it, sign in to TraceKit again from your assistant and tick %q on the sign-in page.", tool, g.Title, have, g.Title)
}
