// Package genai turns OpenTelemetry GenAI spans into LLM calls and prices them.
package genai

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Price is USD per million tokens.
type Price struct {
	Provider    string  `json:"provider,omitempty"`
	Input       float64 `json:"input"`
	Output      float64 `json:"output"`
	CachedInput float64 `json:"cached_input"`
}

// PriceTable maps model names to prices.
type PriceTable struct {
	Taken  string           `json:"taken"`
	Source string           `json:"source,omitempty"`
	Models map[string]Price `json:"models"`
}

//go:embed prices.json
var builtinJSON []byte

// Builtin is the price table shipped in the binary; Taken says when its prices were read.
var Builtin = mustParse(builtinJSON)

func mustParse(b []byte) PriceTable {
	var t PriceTable
	if err := json.Unmarshal(b, &t); err != nil {
		panic(fmt.Sprintf("genai: built-in price table: %v", err))
	}
	return t
}

// WithOverrides returns the table with a tenant's prices (a JSON object model → Price) laid over it.
func (t PriceTable) WithOverrides(overrides []byte) (PriceTable, error) {
	if len(overrides) == 0 || string(overrides) == "{}" || string(overrides) == "null" {
		return t, nil
	}
	var o map[string]Price
	if err := json.Unmarshal(overrides, &o); err != nil {
		return t, fmt.Errorf("LLM price overrides: want {\"<model>\": {\"input\": usd, \"output\": usd, \"cached_input\": usd}}: %w", err)
	}
	out := PriceTable{Taken: t.Taken, Source: t.Source, Models: make(map[string]Price, len(t.Models)+len(o))}
	for k, v := range t.Models {
		out.Models[k] = v
	}
	for k, v := range o {
		if v.Input < 0 || v.Output < 0 || v.CachedInput < 0 {
			return t, fmt.Errorf("LLM price override for %q: prices must not be negative", k)
		}
		out.Models[strings.ToLower(k)] = v
	}
	return out, nil
}

// dated matches the version suffixes providers append to a model family: -2024-08-06, -20250514, -latest, -001.
var dated = regexp.MustCompile(`(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest|-\d{3})$`)

// Lookup finds the price of model: exactly, without a date/version suffix, or by the longest known
// model name that prefixes it (so "claude-sonnet-4-5" falls back to "claude-sonnet-4" only when no
// better entry exists). Provider prefixes like "openai/" are ignored.
func (t PriceTable) Lookup(model string) (Price, bool) {
	m := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	if m == "" {
		return Price{}, false
	}
	if p, ok := t.Models[m]; ok {
		return p, true
	}
	if p, ok := t.Models[dated.ReplaceAllString(m, "")]; ok {
		return p, true
	}
	best := ""
	for name := range t.Models {
		if strings.HasPrefix(m, name+"-") && len(name) > len(best) {
			best = name
		}
	}
	if best == "" {
		return Price{}, false
	}
	return t.Models[best], true
}

// Cost prices one call. inputTokens includes cachedTokens (as OpenAI and the GenAI conventions count
// them); cached tokens are billed at the cached rate.
func (p Price) Cost(inputTokens, outputTokens, cachedTokens int64) float64 {
	cached := min(cachedTokens, inputTokens)
	return (float64(inputTokens-cached)*p.Input + float64(cached)*p.CachedInput + float64(outputTokens)*p.Output) / 1e6
}
