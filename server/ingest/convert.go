package ingest

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracekit/tracekit/server/genai"
	"github.com/tracekit/tracekit/server/store"
)

// maxValueBytes caps one attribute string: applications sometimes attach whole payloads.
const maxValueBytes = 8 << 10

// maxDepth caps nesting of array and map attribute values.
const maxDepth = 8

// converted is one request's rows plus what was refused and why.
type converted struct {
	batch    store.Batch
	rejected int64
	reason   string
}

// convert maps OTLP resource spans to store rows. Spans with malformed ids are rejected (and counted
// for the partial-success answer); everything else is kept.
func convert(rss []*tracepb.ResourceSpans, prices genai.PriceTable) converted {
	var out converted
	n := 0
	for _, rs := range rss {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	out.batch.Spans = make([]store.Span, 0, n)
	var buf []byte
	for _, rs := range rss {
		res := resourceInfo(rs.GetResource().GetAttributes())
		buf = appendAttributes(buf[:0], rs.GetResource().GetAttributes(), 0)
		resJSON := append([]byte(nil), buf...)
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				if len(sp.TraceId) != 16 || len(sp.SpanId) != 8 || (len(sp.ParentSpanId) != 0 && len(sp.ParentSpanId) != 8) {
					out.rejected++
					out.reason = fmt.Sprintf("span %q: trace id must be 16 bytes and span ids 8 bytes", sp.GetName())
					continue
				}
				s := store.Span{
					TraceID:            hex.EncodeToString(sp.TraceId),
					SpanID:             hex.EncodeToString(sp.SpanId),
					Service:            res.service,
					ServiceVersion:     res.version,
					HostName:           res.host,
					Operation:          text(sp.Name),
					Kind:               int16(sp.Kind),
					StartNS:            int64(sp.StartTimeUnixNano),
					StatusCode:         int16(sp.GetStatus().GetCode()),
					StatusMessage:      text(sp.GetStatus().GetMessage()),
					ResourceAttributes: resJSON,
				}
				if len(sp.ParentSpanId) == 8 {
					s.ParentSpanID = hex.EncodeToString(sp.ParentSpanId)
				}
				if sp.EndTimeUnixNano > sp.StartTimeUnixNano {
					s.DurationNS = int64(sp.EndTimeUnixNano - sp.StartTimeUnixNano)
				}
				s.IsEntry = s.ParentSpanID == "" || sp.Kind == tracepb.Span_SPAN_KIND_SERVER || sp.Kind == tracepb.Span_SPAN_KIND_CONSUMER
				var ga genai.Attributes
				for _, kv := range sp.Attributes {
					extract(&s, &ga, kv)
				}
				buf = appendAttributes(buf[:0], sp.Attributes, 0)
				s.Attributes = append([]byte(nil), buf...)
				if len(sp.Events) > 0 {
					buf = appendEvents(buf[:0], sp.Events)
					s.Events = append([]byte(nil), buf...)
				}
				out.batch.Spans = append(out.batch.Spans, s)
				if ga.IsCall() {
					out.batch.LLMCalls = append(out.batch.LLMCalls, genai.Call(&s, &ga, prices))
				}
			}
		}
	}
	return out
}

type resource struct{ service, version, host string }

func resourceInfo(attrs []*commonpb.KeyValue) resource {
	r := resource{service: "unknown_service"} // the OpenTelemetry default for a missing service.name
	for _, kv := range attrs {
		switch kv.Key {
		case "service.name":
			if v := text(kv.GetValue().GetStringValue()); v != "" {
				r.service = v
			}
		case "service.version":
			r.version = text(kv.GetValue().GetStringValue())
		case "host.name":
			r.host = text(kv.GetValue().GetStringValue())
		}
	}
	return r
}

// extract copies the attributes worth a column (and GenAI usage) out of kv. Both the current and
// the older semantic-convention names are accepted.
func extract(s *store.Span, ga *genai.Attributes, kv *commonpb.KeyValue) {
	v := kv.GetValue()
	str := text(v.GetStringValue())
	num := v.GetIntValue()
	if num == 0 && str != "" {
		num, _ = strconv.ParseInt(str, 10, 64)
	}
	if ga.Set(kv.Key, str, num) {
		return
	}
	switch kv.Key {
	case "http.request.method", "http.method":
		s.HTTPMethod = str
	case "http.route":
		s.HTTPRoute = str
	case "http.response.status_code", "http.status_code":
		s.HTTPStatusCode = int32(num)
	case "db.system", "db.system.name":
		s.DBSystem = str
	case "db.statement", "db.query.text":
		s.DBStatement = str
	case "rpc.service":
		s.RPCService = str
	case "rpc.method":
		s.RPCMethod = str
	case "peer.service":
		s.PeerService = str
	case "server.address":
		if s.PeerService == "" && s.Kind == store.KindClient {
			s.PeerService = str
		}
	}
}

// text makes s storable in a PostgreSQL text column: valid UTF-8 without NUL, and capped.
func text(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] >= utf8.RuneSelf {
			s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
			break
		}
	}
	return capString(s)
}

func capString(s string) string {
	if len(s) <= maxValueBytes {
		return s
	}
	cut := maxValueBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[truncated]"
}

// appendAttributes writes attrs as one flat JSON object: {"key": value, ...}.
func appendAttributes(b []byte, attrs []*commonpb.KeyValue, depth int) []byte {
	b = append(b, '{')
	for i, kv := range attrs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, kv.Key)
		b = append(b, ':')
		b = appendValue(b, kv.GetValue(), depth)
	}
	return append(b, '}')
}

func appendValue(b []byte, v *commonpb.AnyValue, depth int) []byte {
	if depth >= maxDepth {
		return appendString(b, "…[nested too deep]")
	}
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return appendString(b, capString(x.StringValue))
	case *commonpb.AnyValue_BoolValue:
		return strconv.AppendBool(b, x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.AppendInt(b, x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) {
			return appendString(b, strconv.FormatFloat(x.DoubleValue, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		return appendString(b, base64.StdEncoding.EncodeToString(x.BytesValue))
	case *commonpb.AnyValue_ArrayValue:
		b = append(b, '[')
		for i, e := range x.ArrayValue.GetValues() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e, depth+1)
		}
		return append(b, ']')
	case *commonpb.AnyValue_KvlistValue:
		return appendAttributes(b, x.KvlistValue.GetValues(), depth+1)
	default:
		return append(b, "null"...)
	}
}

func appendEvents(b []byte, events []*tracepb.Span_Event) []byte {
	b = append(b, '[')
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, e.Name)
		b = append(b, `,"time_ns":`...)
		b = strconv.AppendUint(b, e.TimeUnixNano, 10)
		b = append(b, `,"attributes":`...)
		b = appendAttributes(b, e.Attributes, 0)
		b = append(b, '}')
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD, and NUL is escaped, because
// PostgreSQL's jsonb refuses \u0000.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == 0:
				b = append(b, `\ufffd`...)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
