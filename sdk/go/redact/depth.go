package redact

// Depth is the maximum nesting of a JSON document, counted without decoding it. Value recurses
// once per level, so the server and the agent refuse documents deeper than they allow before
// decoding and redacting them.
func Depth(b []byte) int {
	d, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			d++
			deepest = max(deepest, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return deepest
}
