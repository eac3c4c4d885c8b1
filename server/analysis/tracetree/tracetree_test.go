package tracetree

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

type span struct {
	id, parent string
	start, dur int64
}

func (s *span) TreeFields() (string, string, int64, int64) { return s.id, s.parent, s.start, s.dur }

// path renders a critical path as "id:pathNS" steps.
func path(steps []Step[span]) string {
	var parts []string
	for _, s := range steps {
		parts = append(parts, fmt.Sprintf("%s:%d", s.Node.ID, s.PathNS))
	}
	return strings.Join(parts, " ")
}

func ids(nodes []*Node[span]) string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.ID)
	}
	return strings.Join(out, " ")
}

func TestCriticalPath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spans []span
		roots string // ids of the roots, longest first
		path  string // critical path of the first root
		self  string // self time of every span, in walk order
	}{{
		name:  "sequential children are all on the path",
		spans: []span{{"p", "", 0, 100}, {"a", "p", 10, 20}, {"b", "p", 40, 50}},
		roots: "p", path: "p:30 a:20 b:50", self: "p:30 a:20 b:50",
	}, {
		name: "of overlapping children, the one that finished last",
		// a runs in parallel with b and finishes first: the request waited for b.
		spans: []span{{"p", "", 0, 100}, {"a", "p", 10, 80}, {"b", "p", 50, 45}},
		roots: "p", path: "p:55 b:45", self: "p:15 a:80 b:45",
	}, {
		name: "a sequence after parallel calls",
		spans: []span{{"p", "", 0, 100}, {"a", "p", 0, 30}, {"b", "p", 0, 40}, {"c", "p", 40, 60},
			{"c1", "c", 45, 10}, {"c2", "c", 60, 30}},
		roots: "p", path: "p:0 b:40 c:20 c1:10 c2:30", self: "p:0 a:30 b:40 c:20 c1:10 c2:30",
	}, {
		name: "an async child outliving its parent counts up to the parent's end",
		spans: []span{{"p", "", 0, 100}, {"a", "p", 10, 30}, {"async", "p", 50, 250},
			{"late", "async", 200, 50}},
		roots: "p", path: "p:20 a:30 async:50 late:0", self: "p:20 a:30 async:200 late:50",
	}, {
		name:  "spans whose parent was not received are roots, the longest first",
		spans: []span{{"x", "lost", 0, 10}, {"p", "", 5, 100}, {"y", "gone", 50, 30}, {"c", "p", 10, 10}},
		roots: "p y x", path: "p:90 c:10", self: "p:90 c:10 y:30 x:10",
	}, {
		name:  "a child skewed before its parent's start is clipped to it",
		spans: []span{{"p", "", 100, 100}, {"c", "p", 50, 100}, {"d", "p", 160, 30}},
		// c ends at 150, d at 190: the request waited for d, then for c (ending before d started).
		roots: "p", path: "p:20 c:50 d:30", self: "p:20 c:100 d:30",
	}, {
		name:  "a span naming itself or a descendant as parent becomes a root",
		spans: []span{{"r", "", 0, 10}, {"a", "b", 0, 50}, {"b", "a", 5, 40}, {"s", "s", 0, 5}},
		roots: "a r s", path: "a:10 b:40", self: "a:10 b:40 r:10 s:5",
	}, {
		name:  "a child that ends exactly when the next starts is still sequential",
		spans: []span{{"p", "", 0, 30}, {"a", "p", 0, 10}, {"b", "p", 10, 10}, {"c", "p", 20, 10}},
		roots: "p", path: "p:0 a:10 b:10 c:10", self: "p:0 a:10 b:10 c:10",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tree := Build(tc.spans)
			if got := ids(tree.Roots); got != tc.roots {
				t.Errorf("roots %q, want %q", got, tc.roots)
			}
			steps := CriticalPath(tree.Roots[0])
			if got := path(steps); got != tc.path {
				t.Errorf("critical path %q, want %q", got, tc.path)
			}
			var sum int64
			for _, s := range steps {
				sum += s.PathNS
			}
			if sum != tree.Roots[0].DurationNS {
				t.Errorf("the path's steps add up to %d, not the root's %d", sum, tree.Roots[0].DurationNS)
			}
			var self []string
			for _, r := range tree.Roots {
				Walk(r, func(n *Node[span]) { self = append(self, fmt.Sprintf("%s:%d", n.ID, n.SelfNS)) })
			}
			if got := strings.Join(self, " "); got != tc.self {
				t.Errorf("self times %q, want %q", got, tc.self)
			}
			if got := len(self); got != len(tc.spans) {
				t.Errorf("walks reach %d of %d spans", got, len(tc.spans))
			}
		})
	}
}

func TestBuild_OrdersChildrenByStartThenIDAndCountsSubtrees(t *testing.T) {
	tree := Build([]span{{"c", "p", 20, 5}, {"p", "", 0, 100}, {"b", "p", 10, 5}, {"a", "p", 10, 5}, {"d", "c", 21, 1}})
	p := tree.ByID["p"]
	if got := ids(p.Children); got != "a b c" {
		t.Errorf("children %q, want a b c", got)
	}
	if p.Size != 5 || tree.ByID["c"].Size != 2 || tree.ByID["d"].Parent != tree.ByID["c"] || Root(tree.ByID["d"]) != p {
		t.Errorf("sizes p=%d c=%d, or parents wrong", p.Size, tree.ByID["c"].Size)
	}
}

// TestCriticalPath_50000Spans checks the shapes a runaway trace takes, at the size get_trace_detail
// reads: a chain too deep for recursion, and a fan-out of sequential and of parallel calls.
func TestCriticalPath_50000Spans(t *testing.T) {
	const n = 50000
	chain := make([]span, n)
	fanSeq := []span{{"root", "", 0, 2 * n}}
	fanPar := []span{{"root", "", 0, 2 * n}}
	for i := range n {
		chain[i] = span{fmt.Sprint(i), fmt.Sprint(i - 1), int64(i), int64(2*n - 2*i)}
		fanSeq = append(fanSeq, span{fmt.Sprint(i), "root", int64(2 * i), 1})
		fanPar = append(fanPar, span{fmt.Sprint(i), "root", int64(i), int64(n)})
	}
	chain[0].parent = ""
	for _, tc := range []struct {
		name  string
		spans []span
		steps int
	}{{"chain", chain, n}, {"sequential fan-out", fanSeq, n + 1}, {"parallel fan-out", fanPar, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			tree := Build(tc.spans)
			root := tree.Roots[0]
			if len(tree.Roots) != 1 || root.Size != len(tc.spans) {
				t.Fatalf("%d roots, the first of size %d", len(tree.Roots), root.Size)
			}
			steps := CriticalPath(root)
			var sum int64
			for _, s := range steps {
				sum += s.PathNS
			}
			if len(steps) != tc.steps || sum != root.DurationNS {
				t.Errorf("%d steps adding up to %d, want %d steps adding up to %d", len(steps), sum, tc.steps, root.DurationNS)
			}
			if !slices.IsSortedFunc(steps, func(a, b Step[span]) int { return int(a.Node.StartNS - b.Node.StartNS) }) {
				t.Error("steps are not in start order")
			}
		})
	}
}

func BenchmarkCriticalPath_50000SequentialCalls(b *testing.B) {
	spans := []span{{"root", "", 0, 100000}}
	for i := range 50000 {
		spans = append(spans, span{fmt.Sprint(i), "root", int64(2 * i), 1})
	}
	for b.Loop() {
		CriticalPath(Build(spans).Roots[0])
	}
}
