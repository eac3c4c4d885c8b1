package demo

import (
	"fmt"
	"strconv"
)

// llmCall is one request to a model.
type llmCall struct {
	m               *model
	in, out, cached int64   // token usage; out is ignored for embeddings
	temperature     float64 // chat only
	maxTokens       int64   // chat only
	failRate        float64
	// legacy instrumentation reports gen_ai.system (the attribute before gen_ai.provider.name):
	// legacyOnly sends just that, legacyToo both.
	legacyOnly, legacyToo bool
}

// genai records a model call from parent's pod as a GenAI CLIENT span. Through the llm-gateway the
// request adds the gateway's HTTP spans, but only this span carries GenAI attributes, so each call is
// counted and priced once. It returns when the call ended and whether it failed.
func (t *trace) genai(parent *span, c llmCall, at int64, viaGateway bool) (int64, bool) {
	g := t.g
	m := c.m
	op, path := "chat", providerPath(m)
	if m.embeddings {
		op = "embeddings"
	}
	host, port := m.host, m.port
	if viaGateway {
		host, port = llmGateway.name, llmGateway.port
	}
	s := t.child(parent, parent.res.svc.app, client, op+" "+m.name, at,
		str("gen_ai.operation.name", op),
		str("gen_ai.request.model", m.name),
		str("server.address", host),
		i64("server.port", int64(port)))
	t.llm++
	if !c.legacyOnly {
		s.set(str("gen_ai.provider.name", m.provider))
	}
	if c.legacyOnly || c.legacyToo {
		s.set(str("gen_ai.system", m.provider))
	}
	if !m.embeddings {
		s.set(f64("gen_ai.request.temperature", c.temperature), i64("gen_ai.request.max_tokens", c.maxTokens))
	}

	// Latency: time to first token plus decoding, which is what makes big answers slow.
	dur := g.lognorm(m.firstToken, m.firstToken*2.5)
	if !m.embeddings {
		dur += int64(float64(c.out) * m.perToken * g.logn(1, 1.4) * 1e6)
	}
	failed := g.chance(c.failRate)
	code, excType, msg := 200, "", ""
	if failed {
		dur = g.lognorm(m.firstToken/3, m.firstToken)
		code, excType, msg = providerError(m)
	}
	dur += t.providerDelay(m)

	end := at + dur
	if viaGateway {
		end = t.throughGateway(parent, s, m, path, at, dur, failed, code, msg)
	}

	if failed {
		s.set(str("error.type", excType))
		s.fail(end, msg, excType)
		s.end(end)
		return end, true
	}
	s.set(str("gen_ai.response.model", m.responseModel), i64("gen_ai.usage.input_tokens", c.in))
	if m.embeddings {
		s.set(i64("gen_ai.embeddings.dimension.count", 1536))
	} else {
		s.set(
			str("gen_ai.response.id", responseID(m, g.rng.Uint64())),
			strs("gen_ai.response.finish_reasons", "stop"),
			i64("gen_ai.usage.output_tokens", c.out))
	}
	if c.cached > 0 {
		s.set(i64("gen_ai.usage.cache_read.input_tokens", min(c.cached, c.in)))
	}
	return s.end(end), false
}

// throughGateway adds the llm-gateway's spans to the call s (from parent's pod) that started at
// and took dur at the provider, and returns when the answer is back with the caller.
func (t *trace) throughGateway(parent, s *span, m *model, path string, at, dur int64, failed bool, code int, msg string) int64 {
	g := t.g
	r := t.call(s, llmGateway, "POST", gatewayRoute(m), gatewayRoute(m), at+g.lognorm(0.2, 0.8), func(gs *span, at int64) reply {
		at = t.db(gs, cacheRedis, "INCRBY", "", "INCRBY ratelimit:"+parent.res.svc.name+":? ?", at, g.lognorm(0.3, 1.1)).done()
		at = t.work(gs, "route "+m.name, at, g.lognorm(0.1, 0.4), str("llm.upstream.provider", m.provider)).done()
		up := t.child(gs, llmGateway.scopes.client, client, "POST", at,
			str("http.request.method", "POST"),
			str("server.address", m.host),
			i64("server.port", int64(m.port)),
			str("url.full", providerURL(m, path)),
			str("peer.service", m.provider),
			i64("http.response.status_code", int64(code)))
		at = up.end(at + dur)
		if failed {
			up.set(str("error.type", strconv.Itoa(code)))
			up.fail(at, "", "")
			return reply{end: at + g.lognorm(0.2, 0.6), code: code, err: msg}
		}
		return ok(at+g.lognorm(0.2, 0.6), 200)
	})
	return r.end + g.lognorm(0.1, 0.4)
}

// providerError is the failure each provider is known for under load: OpenAI rate limits, Anthropic
// overload, quota errors elsewhere.
func providerError(m *model) (code int, excType, msg string) {
	switch m.provider {
	case "openai":
		return 429, "openai.RateLimitError", fmt.Sprintf("Error code: 429 - Rate limit reached for %s in organization org-shopdemo on tokens per min (TPM): Limit 2000000, Used 1998211, Requested 2405.", m.name)
	case "anthropic":
		return 529, "anthropic.OverloadedError", "Error code: 529 - {'type': 'error', 'error': {'type': 'overloaded_error', 'message': 'Overloaded'}}"
	case "vllm":
		return 503, "openai.InternalServerError", "Error code: 503 - The server is overloaded: too many pending requests"
	default:
		return 429, "google.genai.errors.ClientError", "429 RESOURCE_EXHAUSTED. Resource has been exhausted (e.g. check quota)."
	}
}

func providerPath(m *model) string {
	switch {
	case m.embeddings:
		return "/v1/embeddings"
	case m.provider == "anthropic":
		return "/v1/messages"
	case m.provider == "gcp.gemini":
		return "/v1beta/models/" + m.name + ":generateContent"
	default:
		return "/v1/chat/completions"
	}
}

func providerURL(m *model, path string) string {
	if m.port == 443 {
		return "https://" + m.host + path
	}
	return "http://" + m.host + ":" + strconv.Itoa(m.port) + path
}

// gatewayRoute is the OpenAI-compatible API the llm-gateway exposes for every provider.
func gatewayRoute(m *model) string {
	if m.embeddings {
		return "/v1/embeddings"
	}
	return "/v1/chat/completions"
}

func responseID(m *model, v uint64) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 12)
	for i := range b {
		b[i] = alphabet[v%uint64(len(alphabet))]
		v /= uint64(len(alphabet))
	}
	switch m.provider {
	case "anthropic":
		return "msg_01" + string(b)
	case "openai":
		return "chatcmpl-" + string(b)
	default:
		return string(b)
	}
}
