package genai

import (
	"math"
	"testing"

	"github.com/tracekit/tracekit/server/store"
)

type attr struct {
	key string
	str string
	num int64
}

func callOf(attrs ...attr) store.LLMCall {
	var a Attributes
	for _, kv := range attrs {
		a.Set(kv.key, kv.str, kv.num)
	}
	s := store.Span{TraceID: "t", SpanID: "s", Service: "svc"}
	return Call(&s, &a, Builtin)
}

func s(k, v string) attr       { return attr{key: k, str: v} }
func n(k string, v int64) attr { return attr{key: k, num: v} }

// Each instrumentation's own spelling of one gpt-4o-mini call (1,000 in, 200 out) must give the
// same LLM call: 1000*0.15/1e6 + 200*0.60/1e6 USD.
func TestCall_MapsEverySpelling(t *testing.T) {
	want := (1000*0.15 + 200*0.60) / 1e6
	cases := []struct {
		name     string
		attrs    []attr
		provider string
	}{
		{"OpenTelemetry current", []attr{s("gen_ai.operation.name", "chat"), s("gen_ai.provider.name", "openai"),
			s("gen_ai.request.model", "gpt-4o-mini"), n("gen_ai.usage.input_tokens", 1000), n("gen_ai.usage.output_tokens", 200)}, "openai"},
		{"OpenTelemetry deprecated gen_ai.system and prompt/completion tokens", []attr{s("gen_ai.system", "openai"),
			s("gen_ai.request.model", "gpt-4o-mini"), n("gen_ai.usage.prompt_tokens", 1000), n("gen_ai.usage.completion_tokens", 200)}, "openai"},
		{"OpenLLMetry llm.request.type and llm.usage.*", []attr{s("llm.request.type", "chat"), s("llm.vendor", "OpenAI"),
			s("llm.request.model", "gpt-4o-mini"), n("llm.usage.prompt_tokens", 1000), n("llm.usage.completion_tokens", 200),
			n("llm.usage.total_tokens", 1200)}, "OpenAI"},
		{"OpenLLMetry gen_ai.* with llm.usage.total_tokens only besides prompt tokens", []attr{s("llm.request.type", "chat"),
			s("gen_ai.system", "openai"), s("gen_ai.request.model", "gpt-4o-mini"), n("gen_ai.usage.prompt_tokens", 1000),
			n("llm.usage.total_tokens", 1200)}, "openai"},
		{"OpenInference llm.model_name, llm.provider, llm.token_count.*", []attr{s("openinference.span.kind", "LLM"),
			s("llm.provider", "openai"), s("llm.system", "openai"), s("llm.model_name", "gpt-4o-mini"),
			n("llm.token_count.prompt", 1000), n("llm.token_count.completion", 200), n("llm.token_count.total", 1200)}, "openai"},
		{"OpenInference completion count from the total", []attr{s("llm.model_name", "gpt-4o-mini-2024-07-18"),
			n("llm.token_count.prompt", 1000), n("llm.token_count.total", 1200)}, "openai"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := callOf(tc.attrs...)
			if c.InputTokens != 1000 || c.OutputTokens != 200 {
				t.Errorf("tokens in/out = %d/%d, want 1000/200", c.InputTokens, c.OutputTokens)
			}
			if c.Provider != tc.provider {
				t.Errorf("provider = %q, want %q", c.Provider, tc.provider)
			}
			if c.CostUSD == nil || math.Abs(*c.CostUSD-want) > 1e-12 {
				t.Errorf("cost = %v, want %v", c.CostUSD, want)
			}
		})
	}
}

func TestCall_CurrentSpellingWinsWhateverTheOrder(t *testing.T) {
	for _, attrs := range [][]attr{
		{n("gen_ai.usage.input_tokens", 10), n("gen_ai.usage.prompt_tokens", 99), n("llm.token_count.prompt", 98),
			s("gen_ai.provider.name", "azure.ai.openai"), s("gen_ai.system", "openai"), s("llm.model_name", "gpt-4o"), s("gen_ai.request.model", "gpt-4o-mini")},
		{n("llm.token_count.prompt", 98), n("gen_ai.usage.prompt_tokens", 99), n("gen_ai.usage.input_tokens", 10),
			s("gen_ai.system", "openai"), s("gen_ai.provider.name", "azure.ai.openai"), s("gen_ai.request.model", "gpt-4o-mini"), s("llm.model_name", "gpt-4o")},
	} {
		c := callOf(attrs...)
		if c.InputTokens != 10 || c.Provider != "azure.ai.openai" || c.RequestModel != "gpt-4o-mini" {
			t.Errorf("got input %d, provider %q, model %q; want 10, azure.ai.openai, gpt-4o-mini", c.InputTokens, c.Provider, c.RequestModel)
		}
	}
}

func TestCall_CachedTokenSpellings(t *testing.T) {
	for _, key := range []string{"gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cached_tokens",
		"gen_ai.usage.cache_read_input_tokens", "llm.token_count.prompt_details.cache_read"} {
		c := callOf(s("gen_ai.request.model", "gpt-4o"), n("gen_ai.usage.input_tokens", 1000), n(key, 400))
		if c.CachedInputTokens != 400 {
			t.Errorf("%s: cached = %d, want 400", key, c.CachedInputTokens)
		}
	}
}

func TestCall_CostUnknown(t *testing.T) {
	cases := map[string][]attr{
		"model not in the table":      {s("gen_ai.request.model", "acme-llm-7"), n("gen_ai.usage.input_tokens", 10)},
		"only a total token count":    {s("llm.model_name", "gpt-4o"), n("llm.token_count.total", 1200)},
		"OpenLLMetry total, no split": {s("llm.request.model", "gpt-4o"), n("llm.usage.total_tokens", 1200)},
	}
	for name, attrs := range cases {
		if c := callOf(attrs...); c.CostUSD != nil {
			t.Errorf("%s: cost = %v, want unknown (nil)", name, *c.CostUSD)
		}
	}
}

func TestSet_IgnoresOtherAttributes(t *testing.T) {
	var a Attributes
	for _, k := range []string{"http.route", "llm.input_messages.0.message.content", "gen_ai.prompt", "db.system"} {
		if a.Set(k, "x", 1) {
			t.Errorf("Set(%q) = true, want false", k)
		}
	}
	if a.IsCall() {
		t.Error("IsCall() = true for a span without GenAI attributes")
	}
}
