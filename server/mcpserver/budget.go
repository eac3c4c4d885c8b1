package mcpserver

import (
	"encoding/json"
)

// Token budgets, in characters/4 as assistants count them. The hard cap stays well below the 25,000
// tokens at which Claude Code refuses a tool result.
const (
	defaultMaxTokens = 4000
	minMaxTokens     = 1000
	hardMaxTokens    = 20000
)

// budget is what is left of an answer's size, in characters. Items are admitted while they fit;
// the first item always is, so paging progresses (items are capped well below the smallest budget).
type budget struct {
	max   int // characters
	left  int
	items int
}

// overhead is reserved for the answer's header, paging fields and suggestions.
const overhead = 1600

func newBudget(maxTokens int) *budget {
	max := clamp(maxTokens, minMaxTokens, hardMaxTokens, defaultMaxTokens) * 4
	return &budget{max: max, left: max - overhead}
}

// limit is the size the whole answer must keep to, in characters.
func (b *budget) limit() int { return b.max }

// answerSize is what an answer costs an assistant: its text and its structured content.
func answerSize(out any, text string) int {
	j, _ := json.Marshal(out)
	return len(j) + len(text)
}

// fit admits an item whose structured form is v and whose text line is line.
func (b *budget) fit(v any, line string) bool {
	j, _ := json.Marshal(v)
	n := len(j) + len(line) + 2
	if b.items > 0 && n > b.left {
		return false
	}
	b.left -= n
	b.items++
	return true
}
