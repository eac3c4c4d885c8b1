package genai

import "github.com/tracekit/tracekit/server/store"

// Attributes are the GenAI semantic-convention attributes of one span.
type Attributes struct {
	Operation     string // gen_ai.operation.name
	Provider      string // gen_ai.provider.name, or the older gen_ai.system
	RequestModel  string // gen_ai.request.model
	ResponseModel string // gen_ai.response.model
	InputTokens   int64  // gen_ai.usage.input_tokens (older: prompt_tokens)
	OutputTokens  int64  // gen_ai.usage.output_tokens (older: completion_tokens)
	CachedTokens  int64  // gen_ai.usage.cache_read.input_tokens
	ErrorType     string // error.type
}

// IsCall reports whether the span describes a model call: it names an operation or a model.
func (a *Attributes) IsCall() bool {
	return a.Operation != "" || a.RequestModel != "" || a.ResponseModel != ""
}

// Set records attribute key when it is one of ours and reports whether it was.
func (a *Attributes) Set(key string, str string, num int64) bool {
	switch key {
	case "gen_ai.operation.name":
		a.Operation = str
	case "gen_ai.provider.name":
		a.Provider = str
	case "gen_ai.system":
		if a.Provider == "" {
			a.Provider = str
		}
	case "gen_ai.request.model":
		a.RequestModel = str
	case "gen_ai.response.model":
		a.ResponseModel = str
	case "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens":
		a.InputTokens = num
	case "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens":
		a.OutputTokens = num
	case "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cached_tokens":
		a.CachedTokens = num
	case "error.type":
		a.ErrorType = str
	default:
		return false
	}
	return true
}

// Call builds the llm_calls row of span s, priced from prices. The response model (what actually
// served the call) is priced when present; a model missing from the table leaves the cost unknown.
func Call(s *store.Span, a *Attributes, prices PriceTable) store.LLMCall {
	c := store.LLMCall{
		TraceID: s.TraceID, SpanID: s.SpanID, Service: s.Service, Operation: a.Operation,
		Provider: a.Provider, RequestModel: a.RequestModel, ResponseModel: a.ResponseModel,
		InputTokens: a.InputTokens, OutputTokens: a.OutputTokens, CachedInputTokens: a.CachedTokens,
		StartNS: s.StartNS, DurationNS: s.DurationNS, StatusCode: s.StatusCode, ErrorType: a.ErrorType,
	}
	model := a.ResponseModel
	if model == "" {
		model = a.RequestModel
	}
	if p, ok := prices.Lookup(model); ok {
		cost := p.Cost(a.InputTokens, a.OutputTokens, a.CachedTokens)
		c.CostUSD = &cost
		if c.Provider == "" {
			c.Provider = p.Provider
		}
	}
	return c
}
