package ingest

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"unicode/utf8"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func decode(enc encoding, body []byte, req *collectorpb.ExportTraceServiceRequest) error {
	if enc == encProto {
		return decodeProto(body, req)
	}
	fixed, err := hexIDsToBase64(body)
	if err != nil {
		return fmt.Errorf("body is not valid OTLP JSON: %v", err)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(fixed, req); err != nil {
		return fmt.Errorf("body is not valid OTLP JSON for an ExportTraceServiceRequest: %v", err)
	}
	return nil
}

// decodeProto unmarshals body. proto3 refuses strings that are not UTF-8, which would lose a whole
// batch for one bad attribute; such strings are repaired (U+FFFD), as the JSON path already does.
func decodeProto(body []byte, req *collectorpb.ExportTraceServiceRequest) error {
	err := proto.Unmarshal(body, req)
	if err == nil {
		return nil
	}
	if fixed, changed, ferr := validUTF8(body, req.ProtoReflect().Descriptor(), 0); ferr == nil && changed {
		proto.Reset(req)
		err = proto.Unmarshal(fixed, req)
	}
	if err != nil {
		return fmt.Errorf("body is not a valid OTLP ExportTraceServiceRequest protobuf: %v", err)
	}
	return nil
}

// validUTF8 returns b (a message of type md) with invalid UTF-8 in its string fields replaced,
// re-encoding the lengths of the messages around them. Unknown fields are kept as they are.
func validUTF8(b []byte, md protoreflect.MessageDescriptor, depth int) ([]byte, bool, error) {
	if depth > 64 {
		return nil, false, fmt.Errorf("messages nested too deeply")
	}
	out := make([]byte, 0, len(b))
	changed := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		fd := md.Fields().ByNumber(num)
		if typ != protowire.BytesType || fd == nil || (fd.Kind() != protoreflect.StringKind && fd.Kind() != protoreflect.MessageKind) {
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				return nil, false, protowire.ParseError(m)
			}
			out = append(out, b[:n+m]...)
			b = b[n+m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return nil, false, protowire.ParseError(m)
		}
		if fd.Kind() == protoreflect.StringKind && !utf8.Valid(v) {
			v, changed = []byte(string([]rune(string(v)))), true
		} else if fd.Kind() == protoreflect.MessageKind {
			inner, c, err := validUTF8(v, fd.Message(), depth+1)
			if err != nil {
				return nil, false, err
			}
			v, changed = inner, changed || c
		}
		out = protowire.AppendTag(out, num, typ)
		out = protowire.AppendBytes(out, v)
		b = b[n+m:]
	}
	return out, changed, nil
}

// hexIDsToBase64 rewrites, in place, trace and span ids from OTLP/JSON's hex form to the base64
// that protojson expects for bytes fields (OTLP/JSON deviates from the proto3 JSON mapping there).
// It scans the bytes once without building a document, so a large body costs no more memory than
// itself.
func hexIDsToBase64(body []byte) ([]byte, error) {
	w := 0 // write position; never ahead of the read position i
	var raw [64]byte
	for i := 0; i < len(body); {
		if body[i] != '"' {
			body[w] = body[i]
			w, i = w+1, i+1
			continue
		}
		end, err := stringEnd(body, i)
		if err != nil {
			return nil, err
		}
		key := body[i+1 : end]
		copy(body[w:], body[i:end+1])
		w, i = w+end+1-i, end+1
		if !isIDKey(key) {
			continue
		}
		// A key is followed by ':'; an id value by a string.
		j := skipSpace(body, i)
		if j >= len(body) || body[j] != ':' {
			continue
		}
		j = skipSpace(body, j+1)
		if j >= len(body) || body[j] != '"' {
			continue
		}
		vend, err := stringEnd(body, j)
		if err != nil {
			return nil, err
		}
		copy(body[w:], body[i:j]) // ':' and spaces
		w += j - i
		val := body[j+1 : vend]
		if len(val) > 2*len(raw) {
			return nil, fmt.Errorf("%s is %d characters, longer than any trace or span id", key, len(val))
		}
		n, err := hex.Decode(raw[:], val)
		if err != nil {
			return nil, fmt.Errorf("%s %q is not hex-encoded", key, val)
		}
		// Unpadded base64 (which protojson accepts) is never longer than hex, so it fits in place.
		body[w] = '"'
		base64.RawStdEncoding.Encode(body[w+1:], raw[:n])
		w += 1 + base64.RawStdEncoding.EncodedLen(n)
		body[w] = '"'
		w, i = w+1, vend+1
	}
	return body[:w], nil
}

// stringEnd returns the index of the quote closing the JSON string that starts at b[start].
func stringEnd(b []byte, start int) (int, error) {
	for i := start + 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at offset %d", start)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func isIDKey(k []byte) bool {
	switch string(k) {
	case "traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id":
		return true
	}
	return false
}
