package demo

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	collectortracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Sender delivers OTLP/HTTP trace exports (protobuf, gzip) to an ingest endpoint.
type Sender struct {
	URL         string       // base URL, e.g. http://127.0.0.1:8080; /v1/traces is appended
	APIKey      string       // sent as a bearer token
	Client      *http.Client // default: 60 s timeout, a kept-alive connection per concurrent request
	Concurrency int          // requests in flight, default 4

	endpoint  string
	retryBase time.Duration // first backoff; tests shorten it
}

// Failures are retried a bounded number of times, so a dead server fails the run in well under a
// minute. Backpressure (429, or 503 with Retry-After) is the server working as intended, so it is
// retried for as long as maxThrottled, honouring Retry-After up to maxRetryAfter each time.
const (
	maxAttempts   = 8
	firstBackoff  = 250 * time.Millisecond
	maxBackoff    = 8 * time.Second
	maxRetryAfter = time.Minute
	maxThrottled  = 5 * time.Minute
)

func (s Sender) withDefaults() (Sender, error) {
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return s, fmt.Errorf("demo: ingest URL %q is not valid: want the server's base URL, e.g. http://127.0.0.1:8080", s.URL)
	}
	s.endpoint = strings.TrimSuffix(s.URL, "/")
	if !strings.HasSuffix(s.endpoint, "/v1/traces") {
		s.endpoint += "/v1/traces"
	}
	if s.Concurrency <= 0 {
		s.Concurrency = 4
	}
	if s.retryBase == 0 {
		s.retryBase = firstBackoff
	}
	if s.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = s.Concurrency
		s.Client = &http.Client{Timeout: 60 * time.Second, Transport: tr}
	}
	return s, nil
}

// permanentError is a failure retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// statusError is a retryable HTTP status; after is the server's Retry-After, if any.
type statusError struct {
	err       error
	after     time.Duration
	throttled bool
}

func (e *statusError) Error() string { return e.err.Error() }

// export sends one request, retrying backpressure, 5xx and connection errors.
func (s Sender) export(ctx context.Context, req *collectortracepb.ExportTraceServiceRequest, spans int) error {
	body, err := encode(req)
	if err != nil {
		return fmt.Errorf("encode OTLP request: %w", err)
	}
	var failures int
	var throttled time.Duration
	for {
		err := s.post(ctx, body, spans)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if perm := (*permanentError)(nil); errors.As(err, &perm) {
			return err
		}
		var wait time.Duration
		if se := (*statusError)(nil); errors.As(err, &se) && se.throttled {
			wait = cmp.Or(se.after, 4*s.retryBase)
			if throttled += wait; throttled > maxThrottled {
				return fmt.Errorf("send %d spans to %s: the server was still busy after %s: %w", spans, s.endpoint, maxThrottled, err)
			}
		} else {
			if failures++; failures == maxAttempts {
				return fmt.Errorf("send %d spans to %s: giving up after %d attempts: %w", spans, s.endpoint, failures, err)
			}
			wait = backoff(s.retryBase, failures)
			if errors.As(err, &se) && se.after > 0 {
				wait = se.after
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return context.Cause(ctx)
		}
	}
}

// post makes one attempt.
func (s Sender) post(ctx context.Context, body []byte, spans int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return &permanentError{err}
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", "tracekit-demo")
	if s.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.APIKey)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil && resp.StatusCode/100 == 2 {
		return fmt.Errorf("read response: %w", err)
	}

	ct := resp.Header.Get("Content-Type")
	switch code := resp.StatusCode; {
	case code/100 == 2:
		return partialSuccess(ct, b, spans)
	case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout, code >= 500:
		after := retryAfter(resp.Header.Get("Retry-After"))
		return &statusError{
			err:   fmt.Errorf("%s: %s", resp.Status, message(ct, b)),
			after: after,
			// A 503 without Retry-After is more likely a dead backend than a busy one.
			throttled: code == http.StatusTooManyRequests || (code == http.StatusServiceUnavailable && after > 0),
		}
	default:
		hint := ""
		if code == http.StatusUnauthorized || code == http.StatusForbidden {
			hint = "; check the API key"
		}
		return &permanentError{fmt.Errorf("ingest at %s refused %d spans: %s: %s%s", s.endpoint, spans, resp.Status, message(ct, b), hint)}
	}
}

// partialSuccess fails when the server accepted the request but dropped spans: the demo would
// silently miss data otherwise.
func partialSuccess(contentType string, b []byte, spans int) error {
	if len(b) == 0 {
		return nil
	}
	var resp collectortracepb.ExportTraceServiceResponse
	var err error
	if isJSON(contentType) {
		err = protojson.Unmarshal(b, &resp)
	} else {
		err = proto.Unmarshal(b, &resp)
	}
	if err != nil {
		return nil // the spans were acknowledged; an unreadable body does not change that
	}
	if ps := resp.GetPartialSuccess(); ps.GetRejectedSpans() > 0 {
		return &permanentError{fmt.Errorf("ingest rejected %d of %d spans: %s", ps.GetRejectedSpans(), spans, ps.GetErrorMessage())}
	}
	return nil
}

// message extracts the server's explanation from an error body: an OTLP google.rpc.Status in
// protobuf or JSON, a JSON object with a message or error field, or plain text.
func message(contentType string, b []byte) string {
	if len(b) == 0 {
		return "(no message)"
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if strings.Contains(mt, "protobuf") {
		var st spb.Status
		if proto.Unmarshal(b, &st) == nil && st.GetMessage() != "" {
			return st.GetMessage()
		}
	}
	if isJSON(contentType) {
		var v struct{ Message, Error string }
		if json.Unmarshal(b, &v) == nil {
			if v.Message != "" {
				return v.Message
			}
			if v.Error != "" {
				return v.Error
			}
		}
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

func isJSON(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "application/json"
}

// retryAfter reads Retry-After in seconds or as an HTTP date; zero means not given.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), maxRetryAfter)
}

// backoff is exponential with jitter, so concurrent senders do not retry in lockstep.
func backoff(base time.Duration, attempt int) time.Duration {
	d := min(base<<(attempt-1), maxBackoff)
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2)
}

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

func encode(req *collectortracepb.ExportTraceServiceRequest) ([]byte, error) {
	raw, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(raw) / 4)
	w := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(w)
	w.Reset(&buf)
	if _, err := w.Write(raw); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
