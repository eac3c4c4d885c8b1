package demo

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	collectortracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// small is a run of a few batches, enough to exercise the sender.
var small = Options{End: testEnd, Traces: 200, Seed: 1, BatchSpans: 1000}

func TestRun_RetriesAfter503HonouringRetryAfter(t *testing.T) {
	rc, srv := newReceiver(t)
	var mu sync.Mutex
	var times []time.Time
	rc.reject = func(n int, w http.ResponseWriter) bool {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "ingest queue full", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	res, err := Run(context.Background(), small, Sender{URL: srv.URL, APIKey: testAPIKey, Concurrency: 1}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := len(rc.received()); got != res.Spans {
		t.Errorf("receiver got %d spans, Run reports %d", got, res.Spans)
	}
	if wait := times[1].Sub(times[0]); wait < time.Second {
		t.Errorf("retried after %s, want the 1s of Retry-After", wait)
	}
}

func TestRun_RetriesTransientFailures(t *testing.T) {
	tests := []struct {
		name   string
		status int
	}{
		{"too many requests", http.StatusTooManyRequests},
		{"internal server error", http.StatusInternalServerError},
		{"bad gateway", http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, srv := newReceiver(t)
			rc.reject = func(n int, w http.ResponseWriter) bool {
				if n <= 2 {
					http.Error(w, "try again", tt.status)
					return true
				}
				return false
			}
			res, err := Run(context.Background(), small, Sender{URL: srv.URL, APIKey: testAPIKey, Concurrency: 1, retryBase: time.Millisecond}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := len(rc.received()); got != res.Spans || got == 0 {
				t.Errorf("receiver got %d spans, Run reports %d", got, res.Spans)
			}
		})
	}
}

func TestRun_KeepsRetryingWhileTheServerAppliesBackpressure(t *testing.T) {
	rc, srv := newReceiver(t)
	rc.reject = func(n int, w http.ResponseWriter) bool {
		if n <= 2*maxAttempts {
			http.Error(w, "busy", http.StatusTooManyRequests)
			return true
		}
		return false
	}
	res, err := Run(context.Background(), small, Sender{URL: srv.URL, APIKey: testAPIKey, Concurrency: 1, retryBase: time.Millisecond}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := len(rc.received()); got != res.Spans || got == 0 {
		t.Errorf("receiver got %d spans, Run reports %d", got, res.Spans)
	}
}

func TestRun_GivesUpAfterBoundedRetries(t *testing.T) {
	rc, srv := newReceiver(t)
	rc.reject = func(int, http.ResponseWriter) bool { panic(http.ErrAbortHandler) } // connection reset
	_, err := Run(context.Background(), small, Sender{URL: srv.URL, APIKey: testAPIKey, Concurrency: 1, retryBase: time.Millisecond}, nil)
	if err == nil || !strings.Contains(err.Error(), "giving up after 8 attempts") {
		t.Fatalf("Run = %v, want it to give up after 8 attempts", err)
	}
	if rc.count() != maxAttempts {
		t.Errorf("server saw %d requests, want %d", rc.count(), maxAttempts)
	}
}

func TestRun_FailsWithTheServersMessageOnClientErrors(t *testing.T) {
	statusBody, _ := proto.Marshal(&spb.Status{Code: 3, Message: "span 3 has an invalid trace ID"})
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        []string
	}{
		{"plain text", http.StatusBadRequest, "text/plain", "malformed OTLP request\n", []string{"400 Bad Request", "malformed OTLP request"}},
		{"OTLP status", http.StatusBadRequest, "application/x-protobuf", string(statusBody), []string{"span 3 has an invalid trace ID"}},
		{"JSON", http.StatusRequestEntityTooLarge, "application/json", `{"error":"request larger than 8 MiB"}`, []string{"413", "request larger than 8 MiB"}},
		{"bad key", http.StatusUnauthorized, "text/plain", "unknown API key", []string{"unknown API key", "check the API key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, srv := newReceiver(t)
			rc.reject = func(_ int, w http.ResponseWriter) bool {
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
				return true
			}
			_, err := Run(context.Background(), small, Sender{URL: srv.URL, APIKey: testAPIKey, Concurrency: 1}, nil)
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if rc.count() != 1 {
				t.Errorf("server saw %d requests, want no retry", rc.count())
			}
		})
	}
}

func TestRun_FailsWhenTheServerRejectsSpans(t *testing.T) {
	rc, srv := newReceiver(t)
	rc.reject = func(_ int, w http.ResponseWriter) bool {
		b, _ := proto.Marshal(&collectortracepb.ExportTraceServiceResponse{PartialSuccess: &collectortracepb.ExportTracePartialSuccess{
			RejectedSpans: 3, ErrorMessage: "3 spans have no service.name",
		}})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
		return true
	}
	_, err := Run(context.Background(), small, Sender{URL: srv.URL, APIKey: testAPIKey}, nil)
	if err == nil || !strings.Contains(err.Error(), "rejected 3 of") || !strings.Contains(err.Error(), "no service.name") {
		t.Fatalf("Run = %v, want the partial success reported", err)
	}
}

func TestRun_ReportsProgressUpToTheTotal(t *testing.T) {
	_, srv := newReceiver(t)
	var calls, last, lastTotal int
	res, err := Run(context.Background(), small, Sender{URL: srv.URL, APIKey: testAPIKey}, func(done, total int) {
		calls++
		if done <= last || total < done {
			t.Errorf("progress(%d, %d) after %d", done, total, last)
		}
		last, lastTotal = done, total
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if calls < 2 || last != res.Spans || lastTotal != res.Spans {
		t.Errorf("%d progress calls ending at (%d, %d), want several ending at (%d, %d)", calls, last, lastTotal, res.Spans, res.Spans)
	}
}

func TestRun_StopsWhenCancelled(t *testing.T) {
	_, srv := newReceiver(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := small
	opts.Traces, opts.BatchSpans = 100000, 500
	res, err := Run(ctx, opts, Sender{URL: srv.URL, APIKey: testAPIKey}, func(done, _ int) {
		if done >= 2000 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if res.Spans >= 100000 {
		t.Errorf("sent %d spans after cancellation", res.Spans)
	}
}

func TestRun_RejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		s    Sender
		want string
	}{
		{"no URL", small, Sender{}, "not valid"},
		{"URL without scheme", small, Sender{URL: "localhost:8080"}, "not valid"},
		{"short duration", Options{Duration: 10 * time.Minute}, Sender{URL: "http://127.0.0.1:1"}, "too short"},
		{"negative traces", Options{Traces: -1}, Sender{URL: "http://127.0.0.1:1"}, "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.opts, tt.s, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestRetryAfter_ReadsSecondsAndDates(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"3600", maxRetryAfter},
		{"-5", 0},
		{time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat), maxRetryAfter},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.header); got != tt.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tt.header, got, tt.want)
		}
	}
}
