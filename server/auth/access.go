package auth

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// AccessRule admits the members of identity-provider groups, or named people, to a tenant through
// company sign-in, with the tool groups they may grant an assistant.
type AccessRule struct {
	// Groups are group names as the identity provider reports them.
	Groups []string `json:"groups,omitempty"`
	// Users are e-mail addresses or user names as the identity provider reports them.
	Users []string `json:"users,omitempty"`
	// ToolGroups are the ids of ToolGroups these people may grant.
	ToolGroups []string `json:"toolGroups"`
}

// Access is a tenant's company sign-in rules (TraceKitTenant spec.access). No rule admits nobody:
// company sign-in is opt-in per tenant.
type Access []AccessRule

// ParseAccess reads rules as stored (JSON) and checks them.
func ParseAccess(raw []byte) (Access, error) {
	var a Access
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("access rules: %w", err)
		}
	}
	return a, a.Validate()
}

// Validate says what is wrong with the rules, or returns nil.
func (a Access) Validate() error {
	for i, r := range a {
		if len(r.Groups) == 0 && len(r.Users) == 0 {
			return fmt.Errorf("access rule %d names no groups and no users: add the groups (or users) it admits", i+1)
		}
		if len(r.ToolGroups) == 0 {
			return fmt.Errorf("access rule %d grants no tool groups: list some of %s", i+1, strings.Join(toolGroupIDs(), ", "))
		}
		for _, g := range r.ToolGroups {
			if !IsToolGroup(g) {
				return fmt.Errorf("access rule %d: unknown tool group %q: use %s", i+1, g, strings.Join(toolGroupIDs(), ", "))
			}
		}
	}
	return nil
}

func toolGroupIDs() []string {
	ids := make([]string, len(ToolGroups))
	for i, g := range ToolGroups {
		ids[i] = g.ID
	}
	return ids
}

// Member is a person as an identity provider describes them.
type Member struct {
	Username, Email string
	Groups          []string
}

// Name is how a person is named in tokens and the audit trail: the e-mail address when there is one.
func (m Member) Name() string {
	if m.Email != "" {
		return m.Email
	}
	return m.Username
}

// Grant returns the tool groups the rules let m grant (in ToolGroups order) and the groups of m that
// admitted them; ok is false when no rule admits m. Names compare without regard to case, as
// directories do.
func (a Access) Grant(m Member) (tools, via []string, ok bool) {
	has := func(list []string, s string) bool {
		return s != "" && slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
	}
	allowed := map[string]bool{}
	for _, r := range a {
		admitted := has(r.Users, m.Email) || has(r.Users, m.Username)
		for _, g := range m.Groups {
			if has(r.Groups, g) {
				admitted = true
				if !slices.Contains(via, g) {
					via = append(via, g)
				}
			}
		}
		if admitted {
			ok = true
			for _, t := range r.ToolGroups {
				allowed[t] = true
			}
		}
	}
	for _, g := range ToolGroups {
		if allowed[g.ID] {
			tools = append(tools, g.ID)
		}
	}
	return tools, via, ok
}

// Groups lists every group the rules admit, for telling a refused person what to ask for.
func (a Access) Groups() []string {
	var out []string
	for _, r := range a {
		for _, g := range r.Groups {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	return out
}

// Claims a company sign-in adds to the token's groups beside the tenant, scope and tool groups of
// every sign-in: who signed in and through which of their groups. Only the audit trail reads them.
const (
	userGroupPrefix = "user:"
	viaGroupPrefix  = "idp-group:"
)

// UserGroup is the groups-claim entry naming the person (Member.Name) a company sign-in was for.
func UserGroup(name string) string { return userGroupPrefix + name }

// ViaGroup is the groups-claim entry naming an identity-provider group that admitted the person.
func ViaGroup(group string) string { return viaGroupPrefix + group }
