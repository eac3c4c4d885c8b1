// Package condition is the language of breakpoint conditions: the server checks a condition when a
// breakpoint is created, and agents evaluate it against the captured variables before they capture.
//
//	amount > 1000 && user.country == 'DE'
//	!(retries < 3) || items[0].sku == "A-1"
//	status != nil
//
// Operands are variable paths (name, .field, [index] or ["key"]), numbers, strings in single or
// double quotes, true, false and nil. Operators, loosest first: ||, &&, !, then one comparison
// (== != < <= > >=). Numbers compare as numbers, strings as strings; == and != compare any values.
// Evaluation has no side effects and no loops: it costs one step per operator and path element.
package condition

import (
	"encoding/json"

	"fmt"
	"strconv"
	"strings"
)

// MaxLength is the longest condition accepted, in bytes.
const MaxLength = 1000

const maxNesting = 32

// Expr is a parsed condition.
type Expr struct{ root node }

// Parse checks s and returns the condition it states. An empty s is a condition that always holds.
func Parse(s string) (*Expr, error) {
	if len(s) > MaxLength {
		return nil, fmt.Errorf("condition is %d characters; keep it under %d", len(s), MaxLength)
	}
	p := &parser{src: s}
	p.next()
	if p.tok.kind == tEOF && p.err == nil {
		return &Expr{}, nil
	}
	n, err := p.or(0)
	if err == nil {
		err = p.err
	}
	if err == nil && p.tok.kind != tEOF {
		err = p.errorf("unexpected %s", p.tok)
	}
	if err != nil {
		return nil, fmt.Errorf("condition %q: %w", s, err)
	}
	return &Expr{root: n}, nil
}

// Eval reports whether the condition holds for vars, a decoded JSON object (maps, slices, strings,
// json.Number or float64, bools, nil). A comparison of values that cannot be ordered (a number
// with a string) is an error, and the caller treats the condition as false.
func (e *Expr) Eval(vars map[string]any) (bool, error) {
	if e == nil || e.root == nil {
		return true, nil
	}
	v, err := e.root.eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("the condition is %s, not true or false", describe(v))
	}
	return b, nil
}

type node interface {
	eval(vars map[string]any) (any, error)
}

type (
	literal struct{ v any }
	path    struct {
		root  string
		steps []any // string field or int index
	}
	not    struct{ x node }
	binary struct {
		op   string
		l, r node
	}
)

func (l literal) eval(map[string]any) (any, error) { return l.v, nil }

func (p path) eval(vars map[string]any) (any, error) {
	var v any = vars[p.root]
	for _, s := range p.steps {
		switch k := s.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil, nil
			}
			v = a[k]
		}
	}
	return v, nil
}

func (n not) eval(vars map[string]any) (any, error) {
	v, err := n.x.eval(vars)
	if err != nil {
		return nil, err
	}
	b, ok := v.(bool)
	if !ok {
		return nil, fmt.Errorf("! applies to true or false, not %s", describe(v))
	}
	return !b, nil
}

func (n binary) eval(vars map[string]any) (any, error) {
	l, err := n.l.eval(vars)
	if err != nil {
		return nil, err
	}
	if n.op == "&&" || n.op == "||" {
		lb, ok := l.(bool)
		if !ok {
			return nil, fmt.Errorf("%s applies to true or false, not %s", n.op, describe(l))
		}
		if lb == (n.op == "||") { // short circuit
			return lb, nil
		}
		r, err := n.r.eval(vars)
		if err != nil {
			return nil, err
		}
		rb, ok := r.(bool)
		if !ok {
			return nil, fmt.Errorf("%s applies to true or false, not %s", n.op, describe(r))
		}
		return rb, nil
	}
	r, err := n.r.eval(vars)
	if err != nil {
		return nil, err
	}
	l, r = normalize(l), normalize(r)
	switch n.op {
	case "==":
		return l == r, nil
	case "!=":
		return l != r, nil
	}
	var c int
	switch a := l.(type) {
	case float64:
		b, ok := r.(float64)
		if !ok {
			return nil, fmt.Errorf("cannot order %s and %s", describe(l), describe(r))
		}
		c = cmp(a, b)
	case string:
		b, ok := r.(string)
		if !ok {
			return nil, fmt.Errorf("cannot order %s and %s", describe(l), describe(r))
		}
		c = strings.Compare(a, b)
	default:
		return nil, fmt.Errorf("cannot order %s and %s", describe(l), describe(r))
	}
	switch n.op {
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	default: // ">="
		return c >= 0, nil
	}
}

func cmp(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// normalize makes values comparable with ==: every number a float64; maps and slices, which
// conditions cannot spell, a marker that equals nothing but itself.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f
		}
		return string(x)
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case map[string]any, []any:
		return composite{}
	}
	return v
}

type composite struct{ _ *int }

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case float64, json.Number, int, int64:
		return "a number"
	}
	return "an object or list"
}

// The parser: recursive descent over a hand-written tokenizer.

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tString
	tOp
)

type token struct {
	kind tokKind
	text string // identifier, operator, or the string's value
	num  float64
	pos  int
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of condition"
	case tString:
		return strconv.Quote(t.text)
	}
	return "'" + t.text + "'"
}

type parser struct {
	src string
	pos int
	tok token
	err error
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("at character %d: %s", p.tok.pos+1, fmt.Sprintf(format, args...))
}

var ops = []string{"&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", ".", "[", "]"}

func (p *parser) next() {
	for p.pos < len(p.src) && strings.ContainsRune(" \t\r\n", rune(p.src[p.pos])) {
		p.pos++
	}
	start := p.pos
	p.tok = token{pos: start}
	if p.pos >= len(p.src) {
		return
	}
	c := p.src[p.pos]
	switch {
	case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		for p.pos < len(p.src) && (p.src[p.pos] == '_' || isAlnum(p.src[p.pos])) {
			p.pos++
		}
		p.tok.kind, p.tok.text = tIdent, p.src[start:p.pos]
	case c >= '0' && c <= '9' || c == '-' && p.pos+1 < len(p.src) && p.src[p.pos+1] >= '0' && p.src[p.pos+1] <= '9':
		p.pos++
		for p.pos < len(p.src) && (isAlnum(p.src[p.pos]) || p.src[p.pos] == '.') {
			p.pos++
		}
		p.tok.kind, p.tok.text = tNumber, p.src[start:p.pos]
		f, err := strconv.ParseFloat(p.tok.text, 64)
		if err != nil {
			p.tok.kind, p.err = tEOF, p.errorf("%q is not a number", p.tok.text)
		}
		p.tok.num = f
	case c == '\'' || c == '"':
		var b strings.Builder
		p.pos++
		for p.pos < len(p.src) && p.src[p.pos] != c {
			if p.src[p.pos] == '\\' && p.pos+1 < len(p.src) {
				p.pos++
			}
			b.WriteByte(p.src[p.pos])
			p.pos++
		}
		if p.pos >= len(p.src) {
			p.tok.kind, p.err = tEOF, p.errorf("the string is not closed: add %c", c)
			return
		}
		p.pos++
		p.tok.kind, p.tok.text = tString, b.String()
	default:
		for _, op := range ops {
			if strings.HasPrefix(p.src[p.pos:], op) {
				p.pos += len(op)
				p.tok.kind, p.tok.text = tOp, op
				return
			}
		}
		p.tok.kind, p.err = tEOF, p.errorf("unexpected character %q (operators: && || ! == != < <= > >=)", c)
	}
}

func isAlnum(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *parser) is(op string) bool { return p.tok.kind == tOp && p.tok.text == op }

func (p *parser) or(depth int) (node, error) { return p.chain(depth, "||", p.and) }

func (p *parser) and(depth int) (node, error) { return p.chain(depth, "&&", p.unary) }

func (p *parser) chain(depth int, op string, operand func(int) (node, error)) (node, error) {
	l, err := operand(depth)
	for err == nil && p.is(op) {
		p.next()
		var r node
		if r, err = operand(depth); err == nil {
			l = binary{op: op, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) unary(depth int) (node, error) {
	if depth > maxNesting {
		return nil, p.errorf("nested deeper than %d levels", maxNesting)
	}
	if p.is("!") {
		p.next()
		x, err := p.unary(depth + 1)
		return not{x}, err
	}
	l, err := p.operand(depth)
	if err != nil {
		return nil, err
	}
	if p.tok.kind == tOp {
		switch op := p.tok.text; op {
		case "==", "!=", "<", "<=", ">", ">=":
			p.next()
			r, err := p.operand(depth)
			return binary{op: op, l: l, r: r}, err
		}
	}
	return l, nil
}

func (p *parser) operand(depth int) (node, error) {
	if p.err != nil {
		return nil, p.err
	}
	t := p.tok
	switch t.kind {
	case tNumber:
		p.next()
		return literal{t.num}, p.err
	case tString:
		p.next()
		return literal{t.text}, p.err
	case tIdent:
		p.next()
		switch t.text {
		case "true", "false":
			return literal{t.text == "true"}, p.err
		case "nil", "null":
			return literal{nil}, p.err
		}
		return p.path(t.text)
	case tOp:
		if t.text == "(" {
			p.next()
			x, err := p.or(depth + 1)
			if err != nil {
				return nil, err
			}
			if !p.is(")") {
				return nil, p.errorf("expected ')' but found %s", p.tok)
			}
			p.next()
			return x, p.err
		}
	}
	return nil, p.errorf("expected a variable, number, string, true, false or nil but found %s", t)
}

func (p *parser) path(root string) (node, error) {
	n := path{root: root}
	for p.err == nil {
		switch {
		case p.is("."):
			p.next()
			if p.tok.kind != tIdent {
				return nil, p.errorf("expected a field name after '.' but found %s", p.tok)
			}
			n.steps = append(n.steps, p.tok.text)
			p.next()
		case p.is("["):
			p.next()
			switch t := p.tok; {
			case t.kind == tString:
				n.steps = append(n.steps, t.text)
			case t.kind == tNumber && t.num >= 0 && t.num == float64(int(t.num)):
				n.steps = append(n.steps, int(t.num))
			default:
				return nil, p.errorf("expected an index (0, 1, …) or a quoted key inside [ ] but found %s", t)
			}
			p.next()
			if !p.is("]") {
				return nil, p.errorf("expected ']' but found %s", p.tok)
			}
			p.next()
		default:
			return n, nil
		}
	}
	return nil, p.err
}
