// Package genai turns OpenTelemetry GenAI spans into LLM calls and prices them.
package genai

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// Price is USD per million tokens.
type Price struct {
	Provider    string  `json:"provider,omitempty"`
	Input       float64 `json:"input"`
	Output      float64 `json:"output"`
	CachedInput float64 `json:"cached_input"`
	// Taken is the date (YYYY-MM-DD) this price was read, when it differs from the table's.
	Taken string `json:"taken,omitempty"`
}

// PriceTable maps model names to prices.
type PriceTable struct {
	// Taken is the date (YYYY-MM-DD) the prices were read from the providers' price lists.
	Taken  string           `json:"taken"`
	Source string           `json:"source,omitempty"`
	Models map[string]Price `json:"models"`
}

//go:embed prices.json
var builtinJSON []byte

// Builtin is the price table shipped in the binary; Taken says when its prices were read.
var Builtin = mustParse(builtinJSON)

func mustParse(b []byte) PriceTable {
	t, err := ParsePriceTable(b)
	if err != nil {
		panic(fmt.Sprintf("genai: built-in price table: %v", err))
	}
	return t
}

// priceTableFormat is shown with every error about a price table file.
const priceTableFormat = `want {"taken": "YYYY-MM-DD", "source": "where the prices come from", "models": ` +
	`{"<model>": {"provider": "openai", "input": <USD per million tokens>, "output": <USD>, "cached_input": <USD>, "taken": "YYYY-MM-DD (optional)"}}}`

// LoadPriceTable reads a price table file (the format of server/genai/prices.json); it replaces the
// built-in table, so that operators can use newer prices than the release shipped.
func LoadPriceTable(path string) (PriceTable, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return PriceTable{}, fmt.Errorf("LLM price table: %w", err)
	}
	t, err := ParsePriceTable(b)
	if err != nil {
		return PriceTable{}, fmt.Errorf("LLM price table %s: %w", path, err)
	}
	return t, nil
}

// ParsePriceTable decodes and checks a price table: dates, non-negative prices, known fields only.
func ParsePriceTable(b []byte) (PriceTable, error) {
	var t PriceTable
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, fmt.Errorf("%v; %s", err, priceTableFormat)
	}
	if _, err := time.Parse(time.DateOnly, t.Taken); err != nil {
		return t, fmt.Errorf(`"taken" must be the date the prices were read, as YYYY-MM-DD, not %q`, t.Taken)
	}
	if len(t.Models) == 0 {
		return t, fmt.Errorf(`"models" is empty; %s`, priceTableFormat)
	}
	models := make(map[string]Price, len(t.Models))
	for name, p := range t.Models {
		if p.Input < 0 || p.Output < 0 || p.CachedInput < 0 {
			return t, fmt.Errorf("model %q: prices must not be negative", name)
		}
		if p.Taken != "" {
			if _, err := time.Parse(time.DateOnly, p.Taken); err != nil {
				return t, fmt.Errorf(`model %q: "taken" must be YYYY-MM-DD, not %q`, name, p.Taken)
			}
		}
		models[strings.ToLower(name)] = p
	}
	t.Models = models
	return t, nil
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
