package ingest

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracekit/tracekit/server/genai"
	"github.com/tracekit/tracekit/server/store"
)

// Size limits of stored text, in bytes (a cut value ends in truncatedMark). Names and the other
// texts that index and rollup keys are made of are short, so a key (tenant, kind, service, name, …)
// stays far below PostgreSQL's 2,704-byte btree row limit; free text (statements, messages,
// attribute values) is capped because applications sometimes attach whole payloads.
const (
	maxValueBytes   = 8 << 10 // attribute values, db statements, event names
	maxMessageBytes = 2 << 10 // status messages
	maxNameBytes    = 1 << 10 // span names (operations), HTTP routes
	maxKeyBytes     = 256     // service, version, host, attribute keys, peer/rpc/db names, LLM models
)

// truncatedMark ends every value that was cut to its size limit, so a reader sees it is not whole.
const truncatedMark = "…[truncated]"

// Spans starting before minTimeNS or more than maxFuture after now are refused: a clock that is
// that far off (or a zero or all-ones timestamp) would put the span where no query or retention
// ever finds it.
const (
	minTimeNS = int64(946684800) * 1e9 // 2000-01-01T00:00:00Z
	maxFuture = 24 * time.Hour
)

// maxDepth caps nesting of array and map attribute values.
const maxDepth = 8

// Links kept per span and attributes kept per link (the OpenTelemetry SDKs' default limits are 128
// and 128): a batch consumer links to each message of its batch, and a link's attributes only say
// which message it was.
const (
	maxLinks          = 128
	maxLinkAttributes = 16
)

// converted is one request's rows plus what was refused and why: spans, or only span links (the
// span is kept without them).
type converted struct {
	batch        store.Batch
	rejected     int64
	reason       string
	droppedLinks int64
	linkReason   string
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
	latest := uint64(time.Now().Add(maxFuture).UnixNano())
	var buf []byte
	var kept []*commonpb.KeyValue
	for _, rs := range rss {
		res := resourceInfo(rs.GetResource().GetAttributes())
		buf = appendAttributes(buf[:0], rs.GetResource().GetAttributes(), 0)
		resJSON := append([]byte(nil), buf...)
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				if len(sp.TraceId) != 16 || len(sp.SpanId) != 8 || (len(sp.ParentSpanId) != 0 && len(sp.ParentSpanId) != 8) {
					out.rejected++
					out.reason = fmt.Sprintf("span %q: trace id must be 16 bytes and span ids 8 bytes", capText(sp.GetName(), 128))
					continue
				}
				if sp.StartTimeUnixNano < uint64(minTimeNS) || sp.StartTimeUnixNano > latest || sp.EndTimeUnixNano > latest {
					out.rejected++
					out.reason = fmt.Sprintf("span %q (trace %x): start %d / end %d ns is before 2000 or more than %s in the future; check the sender's clock",
						capText(sp.GetName(), 128), sp.TraceId, sp.StartTimeUnixNano, sp.EndTimeUnixNano, maxFuture)
					continue
				}
				s := store.Span{
					TraceID:            hex.EncodeToString(sp.TraceId),
					SpanID:             hex.EncodeToString(sp.SpanId),
					Service:            res.service,
					ServiceVersion:     res.version,
					HostName:           res.host,
					Operation:          capText(sp.Name, maxNameBytes),
					Kind:               int16(sp.Kind),
					StartNS:            int64(sp.StartTimeUnixNano),
					StatusCode:         int16(sp.GetStatus().GetCode()),
					StatusMessage:      capText(sp.GetStatus().GetMessage(), maxMessageBytes),
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
				kept = kept[:0]
				for _, kv := range sp.Attributes {
					if !extract(&s, &ga, kv) {
						kept = append(kept, kv)
					}
				}
				// An attribute held whole by its column is not stored twice (docs/data-model.md).
				buf = appendAttributes(buf[:0], kept, 0)
				s.Attributes = append([]byte(nil), buf...)
				if len(sp.Events) > 0 {
					buf = appendEvents(buf[:0], sp.Events)
					s.Events = append([]byte(nil), buf...)
				}
				if len(sp.Links) > 0 {
					buf = out.appendLinks(buf[:0], sp)
					s.Links = append([]byte(nil), buf...)
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
			if v := capText(kv.GetValue().GetStringValue(), maxKeyBytes); v != "" {
				r.service = v
			}
		case "service.version":
			r.version = capText(kv.GetValue().GetStringValue(), maxKeyBytes)
		case "host.name":
			r.host = capText(kv.GetValue().GetStringValue(), maxKeyBytes)
		}
	}
	return r
}

// extract copies the attributes worth a column (and GenAI usage) out of kv. Both the current and
// the older semantic-convention names are accepted; the first of them sets the column. It reports
// whether the column now holds kv's value whole, so the attributes JSON need not repeat it (readers
// find these keys in the columns: store.Promoted).
func extract(s *store.Span, ga *genai.Attributes, kv *commonpb.KeyValue) bool {
	v := kv.GetValue()
	str := v.GetStringValue()
	num := v.GetIntValue()
	if num == 0 && str != "" {
		num, _ = strconv.ParseInt(str, 10, 64)
	}
	if ga.Set(kv.Key, capText(str, maxKeyBytes), num) {
		return false // the RCA reads the request model from the attributes
	}
	text := func(col *string, limit int) bool {
		if *col != "" {
			return false
		}
		*col = capText(str, limit)
		_, isString := v.GetValue().(*commonpb.AnyValue_StringValue)
		return isString && *col == str
	}
	switch kv.Key {
	case "http.request.method", "http.method":
		return text(&s.HTTPMethod, maxKeyBytes)
	case "http.route":
		return text(&s.HTTPRoute, maxNameBytes)
	case "http.response.status_code", "http.status_code":
		if s.HTTPStatusCode != 0 {
			return false
		}
		s.HTTPStatusCode = int32(num)
		_, isInt := v.GetValue().(*commonpb.AnyValue_IntValue)
		return isInt && int64(s.HTTPStatusCode) == num
	case "db.system", "db.system.name":
		return text(&s.DBSystem, maxKeyBytes)
	case "db.statement", "db.query.text":
		return text(&s.DBStatement, maxValueBytes)
	case "rpc.service":
		return text(&s.RPCService, maxKeyBytes)
	case "rpc.method":
		return text(&s.RPCMethod, maxKeyBytes)
	case "peer.service": // wins over server.address, whatever the order
		s.PeerService = ""
		return text(&s.PeerService, maxKeyBytes)
	case "server.address":
		if s.PeerService == "" && s.Kind == store.KindClient {
			s.PeerService = capText(str, maxKeyBytes)
		}
	}
	return false
}

// capText makes s storable in a PostgreSQL text column (valid UTF-8 without NUL) of at most limit
// bytes, the marker included when it had to be cut.
func capText(s string, limit int) string {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] >= utf8.RuneSelf {
			s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
			break
		}
	}
	return capString(s, limit)
}

// capString cuts s at a rune boundary so that, with truncatedMark, it holds at most limit bytes.
func capString(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit - len(truncatedMark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncatedMark
}

// appendAttributes writes attrs as one flat JSON object: {"key": value, ...}.
func appendAttributes(b []byte, attrs []*commonpb.KeyValue, depth int) []byte {
	b = append(b, '{')
	for i, kv := range attrs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, capString(kv.Key, maxKeyBytes))
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
		return appendString(b, capString(x.StringValue, maxValueBytes))
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
		b = appendString(b, capString(e.Name, maxValueBytes))
		b = append(b, `,"time_ns":`...)
		b = strconv.AppendUint(b, e.TimeUnixNano, 10)
		b = append(b, `,"attributes":`...)
		b = appendAttributes(b, e.Attributes, 0)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendLinks writes the usable links of sp as a JSON array of store.Link, or nothing when none is:
// a link with malformed ids is dropped, as are those past maxLinks, and the answer says so.
func (out *converted) appendLinks(b []byte, sp *tracepb.Span) []byte {
	n := 0
	for _, l := range sp.Links {
		if len(l.TraceId) != 16 || len(l.SpanId) != 8 {
			out.droppedLinks++
			out.linkReason = fmt.Sprintf("span %q (trace %x) has a link with a %d-byte trace id and a %d-byte span id: a link's trace id must be 16 bytes and its span id 8 bytes",
				capText(sp.GetName(), 128), sp.TraceId, len(l.TraceId), len(l.SpanId))
			continue
		}
		if n == maxLinks {
			out.droppedLinks++
			out.linkReason = fmt.Sprintf("span %q (trace %x) has %d links; the first %d valid ones are kept", capText(sp.GetName(), 128), sp.TraceId, len(sp.Links), maxLinks)
			continue
		}
		if n == 0 {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"trace_id":"`...)
		b = hex.AppendEncode(b, l.TraceId)
		b = append(b, `","span_id":"`...)
		b = hex.AppendEncode(b, l.SpanId)
		b = append(b, '"')
		if len(l.Attributes) > 0 {
			b = append(b, `,"attributes":`...)
			b = appendAttributes(b, l.Attributes[:min(len(l.Attributes), maxLinkAttributes)], 0)
		}
		b = append(b, '}')
	}
	if n == 0 {
		return b
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
