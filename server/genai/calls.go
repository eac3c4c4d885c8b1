package genai

import (
	"strings"

	"github.com/tracekit/tracekit/server/store"
)

// Attributes are the GenAI attributes of one span, whichever instrumentation spelled them.
type Attributes struct {
	Operation     string
	Provider      string
	RequestModel  string
	ResponseModel string
	InputTokens   int64
	OutputTokens  int64
	CachedTokens  int64
	TotalTokens   int64
	ErrorType     string
	// rank[f] is 1 + the rank of the spelling that set field f (0: unset), so that the current
	// semantic convention wins over older or vendor spellings in whatever order they arrive.
	rank [nFields]uint8
}

type field uint8

const (
	fOperation field = iota
	fProvider
	fRequestModel
	fResponseModel
	fInput
	fOutput
	fCached
	fTotal
	fError
	nFields
)

type spelling struct {
	field field
	rank  uint8 // 0 = current OpenTelemetry semantic conventions; higher = older or vendor spelling
}

// spellings maps every attribute name we read to what it means. Sources: OpenTelemetry GenAI
// semantic conventions (current and the deprecated names), OpenLLMetry (traceloop
// opentelemetry-semantic-conventions-ai) and OpenInference (Arize, spec/semantic_conventions.md).
var spellings = map[string]spelling{
	// OpenTelemetry, current.
	"gen_ai.operation.name":                {fOperation, 0},
	"gen_ai.provider.name":                 {fProvider, 0},
	"gen_ai.request.model":                 {fRequestModel, 0},
	"gen_ai.response.model":                {fResponseModel, 0},
	"gen_ai.usage.input_tokens":            {fInput, 0},
	"gen_ai.usage.output_tokens":           {fOutput, 0},
	"gen_ai.usage.cache_read.input_tokens": {fCached, 0},
	"error.type":                           {fError, 0},
	// OpenTelemetry, deprecated names still sent by many instrumentations (and OpenLLMetry).
	"gen_ai.system":                  {fProvider, 1},
	"gen_ai.usage.prompt_tokens":     {fInput, 1},
	"gen_ai.usage.completion_tokens": {fOutput, 1},
	"gen_ai.usage.cached_tokens":     {fCached, 1},
	"gen_ai.usage.total_tokens":      {fTotal, 1},
	// OpenLLMetry: llm.request.type is chat, completion, embedding or rerank; older releases put
	// usage, vendor and models under llm.*.
	"llm.request.type":                     {fOperation, 2},
	"llm.usage.prompt_tokens":              {fInput, 2},
	"llm.usage.completion_tokens":          {fOutput, 2},
	"llm.usage.total_tokens":               {fTotal, 2},
	"gen_ai.usage.cache_read_input_tokens": {fCached, 2},
	"llm.vendor":                           {fProvider, 3},
	"llm.request.model":                    {fRequestModel, 2},
	"llm.response.model":                   {fResponseModel, 2},
	// OpenInference: llm.provider is who hosts the model (openai, azure), llm.system the model family.
	"llm.provider":                              {fProvider, 2},
	"llm.system":                                {fProvider, 3},
	"llm.model_name":                            {fRequestModel, 3},
	"llm.request.model_name":                    {fRequestModel, 2},
	"llm.response.model_name":                   {fResponseModel, 2},
	"llm.token_count.prompt":                    {fInput, 2},
	"llm.token_count.completion":                {fOutput, 2},
	"llm.token_count.total":                     {fTotal, 2},
	"llm.token_count.prompt_details.cache_read": {fCached, 2},
}

// IsCall reports whether the span describes a model call: it names an operation or a model.
func (a *Attributes) IsCall() bool {
	return a.Operation != "" || a.RequestModel != "" || a.ResponseModel != ""
}

// Set records attribute key when it is one of ours and reports whether it was.
func (a *Attributes) Set(key string, str string, num int64) bool {
	// Most attributes are not GenAI ones: skip the map lookup for them.
	if !strings.HasPrefix(key, "gen_ai.") && !strings.HasPrefix(key, "llm.") && key != "error.type" {
		return false
	}
	sp, ok := spellings[key]
	if !ok {
		return false
	}
	if r := a.rank[sp.field]; r != 0 && r-1 < sp.rank {
		return true // a better spelling already set it
	}
	a.rank[sp.field] = sp.rank + 1
	switch sp.field {
	case fOperation:
		a.Operation = str
	case fProvider:
		a.Provider = str
	case fRequestModel:
		a.RequestModel = str
	case fResponseModel:
		a.ResponseModel = str
	case fInput:
		a.InputTokens = num
	case fOutput:
		a.OutputTokens = num
	case fCached:
		a.CachedTokens = num
	case fTotal:
		a.TotalTokens = num
	case fError:
		a.ErrorType = str
	}
	return true
}

// Call builds the llm_calls row of span s, priced from prices. The response model (what actually
// served the call) is priced when present; a model missing from the table leaves the cost unknown.
// When only a total token count was sent, the missing side is total minus the other; with neither
// side known the split cannot be priced and the cost stays unknown.
func Call(s *store.Span, a *Attributes, prices PriceTable) store.LLMCall {
	in, out := a.InputTokens, a.OutputTokens
	haveIn, haveOut := a.rank[fInput] != 0, a.rank[fOutput] != 0
	if a.TotalTokens > 0 {
		switch {
		case haveIn && !haveOut:
			out, haveOut = max(a.TotalTokens-in, 0), true
		case haveOut && !haveIn:
			in, haveIn = max(a.TotalTokens-out, 0), true
		}
	}
	c := store.LLMCall{
		TraceID: s.TraceID, SpanID: s.SpanID, Service: s.Service, Operation: a.Operation,
		Provider: a.Provider, RequestModel: a.RequestModel, ResponseModel: a.ResponseModel,
		InputTokens: in, OutputTokens: out, CachedInputTokens: a.CachedTokens,
		StartNS: s.StartNS, DurationNS: s.DurationNS, StatusCode: s.StatusCode, ErrorType: a.ErrorType,
	}
	model := a.ResponseModel
	if model == "" {
		model = a.RequestModel
	}
	p, ok := prices.Lookup(model)
	if !ok {
		return c
	}
	if c.Provider == "" {
		c.Provider = p.Provider
	}
	if a.TotalTokens > 0 && !haveIn && !haveOut {
		return c
	}
	cost := p.Cost(in, out, a.CachedTokens)
	c.CostUSD = &cost
	return c
}
