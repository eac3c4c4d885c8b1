// Package tracetree builds the span tree of a trace and the measures both the trace tools and the
// root-cause analysis read from it: self time, subtree size and the critical path. One algorithm, so
// that get_trace_detail and get_rca name the same critical path for the same trace.
package tracetree

import (
	"cmp"
	"slices"
)

// Span is what the tree needs of a span. P is a pointer to the caller's span type, so that the tree
// points into the caller's slice instead of copying it.
type Span[S any] interface {
	*S
	// TreeFields returns the span's id, its parent's id ("" for a root), start and duration.
	TreeFields() (id, parentID string, startNS, durationNS int64)
}

// Node is a span in the tree.
type Node[S any] struct {
	Span                *S
	ID, ParentID        string
	StartNS, DurationNS int64
	Parent              *Node[S] // nil for a root and for an orphan whose parent was not received
	Children            []*Node[S]
	SelfNS              int64 // duration not covered by any child (children clipped to this span)
	Size                int   // spans in the subtree, this one included
}

// End is when the span ended.
func (n *Node[S]) End() int64 { return n.StartNS + n.DurationNS }

// Tree is the span tree of one trace.
type Tree[S any] struct {
	// Roots holds the spans without a received parent, the longest first: a trace missing its real
	// root shows its biggest fragment first.
	Roots []*Node[S]
	ByID  map[string]*Node[S]
}

// Build links spans into a tree. Children are ordered by start time, then span id. A span naming
// itself or a descendant as its parent (corrupt data) becomes a root, so every walk ends.
func Build[S any, P Span[S]](spans []S) *Tree[S] {
	t := &Tree[S]{ByID: make(map[string]*Node[S], len(spans))}
	nodes := make([]*Node[S], len(spans))
	for i := range spans {
		n := &Node[S]{Span: &spans[i]}
		n.ID, n.ParentID, n.StartNS, n.DurationNS = P(&spans[i]).TreeFields()
		nodes[i] = n
		t.ByID[n.ID] = n
	}
	slices.SortStableFunc(nodes, func(a, b *Node[S]) int {
		return cmp.Or(cmp.Compare(a.StartNS, b.StartNS), cmp.Compare(a.ID, b.ID))
	})
	for _, n := range nodes {
		if p := t.ByID[n.ParentID]; p != nil && p != n {
			p.Children = append(p.Children, n)
			n.Parent = p
		} else {
			t.Roots = append(t.Roots, n)
		}
	}
	t.breakCycles(nodes)
	slices.SortStableFunc(t.Roots, func(a, b *Node[S]) int { return cmp.Compare(b.DurationNS, a.DurationNS) })
	for _, r := range t.Roots {
		measure(r)
	}
	return t
}

// breakCycles makes a root of every span no root reaches: such a span sits on a parent cycle.
func (t *Tree[S]) breakCycles(nodes []*Node[S]) {
	reached := make(map[*Node[S]]bool, len(nodes))
	for _, r := range t.Roots {
		Walk(r, func(n *Node[S]) { reached[n] = true })
	}
	for _, n := range nodes {
		if reached[n] {
			continue
		}
		p := n.Parent
		p.Children = slices.DeleteFunc(p.Children, func(c *Node[S]) bool { return c == n })
		n.Parent = nil
		t.Roots = append(t.Roots, n)
		Walk(n, func(n *Node[S]) { reached[n] = true })
	}
}

// measure computes self time and subtree sizes, iteratively so that a pathologically deep trace
// cannot exhaust the stack.
func measure[S any](root *Node[S]) {
	var order []*Node[S]
	Walk(root, func(n *Node[S]) { order = append(order, n) })
	for i := len(order) - 1; i >= 0; i-- {
		n := order[i]
		n.Size = 1
		covered, curStart, curEnd := int64(0), int64(0), int64(-1)
		for _, c := range n.Children { // in start order, so overlapping children merge
			n.Size += c.Size
			s, e := max(c.StartNS, n.StartNS), min(c.End(), n.End())
			if e <= s {
				continue
			}
			if s > curEnd {
				if curEnd > curStart {
					covered += curEnd - curStart
				}
				curStart, curEnd = s, e
			} else {
				curEnd = max(curEnd, e)
			}
		}
		if curEnd > curStart {
			covered += curEnd - curStart
		}
		n.SelfNS = max(n.DurationNS-covered, 0)
	}
}

// Walk visits the subtree of n depth-first in start order, without recursion.
func Walk[S any](n *Node[S], visit func(*Node[S])) {
	walkWhile(n, func(n *Node[S]) bool { visit(n); return true })
}

// Root returns the root of n's tree.
func Root[S any](n *Node[S]) *Node[S] {
	for n.Parent != nil {
		n = n.Parent
	}
	return n
}

// Step is a span on the critical path and the part of the path's time spent in the span itself.
type Step[S any] struct {
	Node   *Node[S]
	PathNS int64
}

// CriticalPath returns, in depth-first start order, the spans under top that the request waited
// for: from the end of a span, the child that finished last, then the child that finished before
// that one started, and so on, recursively (sequential calls all count; of parallel ones, the one
// that finished last). The last child to finish counts even when clock skew makes it outlive its
// parent. Each step's PathNS is the time of the path spent in the span and not in a critical child,
// counting only time inside the parent's part of the path, so the steps add up to top's duration.
func CriticalPath[S any](top *Node[S]) []Step[S] {
	pathNS := map[*Node[S]]int64{}
	// A visit is a span on the path and the window [lo, hi] of the path's time it accounts for.
	type visit struct {
		n      *Node[S]
		lo, hi int64
	}
	stack := []visit{{top, top.StartNS, top.End()}}
	var byEnd []*Node[S]
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := v.n
		byEnd = append(byEnd[:0], n.Children...)
		slices.SortStableFunc(byEnd, func(a, b *Node[S]) int { return cmp.Compare(b.End(), a.End()) })
		mark, cursor, own := n.End(), v.hi, int64(0)
		for i, c := range byEnd {
			if i > 0 && c.End() > mark {
				continue // ran in parallel with a critical child that finished later
			}
			mark = c.StartNS
			hi, lo := min(c.End(), cursor), max(c.StartNS, v.lo)
			if hi > lo {
				own += cursor - hi
				cursor = lo
			} else {
				hi, lo = cursor, cursor // on the path, but none of the path's time is left for it
			}
			stack = append(stack, visit{c, lo, hi})
		}
		pathNS[n] = own + max(cursor-v.lo, 0)
	}
	var out []Step[S]
	walkWhile(top, func(n *Node[S]) bool {
		p, ok := pathNS[n]
		if ok {
			out = append(out, Step[S]{n, p})
		}
		return ok
	})
	return out
}

// walkWhile is Walk that skips the subtrees of the spans enter returns false for.
func walkWhile[S any](n *Node[S], enter func(*Node[S]) bool) {
	stack := []*Node[S]{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !enter(n) {
			continue
		}
		for i := len(n.Children) - 1; i >= 0; i-- {
			stack = append(stack, n.Children[i])
		}
	}
}
