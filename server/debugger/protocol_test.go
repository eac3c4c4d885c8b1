package debugger

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// docs/agent-protocol.yaml is what agents in other languages are written against: its schemas must
// name exactly the fields the server reads and writes.
func TestAgentProtocol_SchemasMatchTheServersTypes(t *testing.T) {
	raw, err := os.ReadFile("../../docs/agent-protocol.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for schema, typ := range map[string]any{"BreakpointSpec": Spec{}, "Breakpoint": Breakpoint{}, "Snapshot": SnapshotRequest{}} {
		var want []string
		rt := reflect.TypeOf(typ)
		for i := range rt.NumField() {
			want = append(want, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
		}
		var got []string
		for p := range doc.Components.Schemas[schema].Properties {
			got = append(got, p)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("schema %s has %v, the server's %T has %v", schema, got, typ, want)
		}
	}
}
