package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"sync"
	"sync/atomic"
	"time"
)

// The hostile mix of issue 12: what must not cost the well-behaved exporters their batches or the
// server its memory.
const (
	jsonSenders   = 8        // each posting a ~15 MiB OTLP/JSON body, again and again
	jsonBytes     = 15 << 20 //
	bombSenders   = 16       // each posting a gzip body that inflates to 1 GiB of zeros
	bombBytes     = 1 << 30  //
	tricklers     = 8        // each sending a body one byte every 100 ms
	trickleLength = 1 << 20  // the Content-Length a trickler announces
)

// runHostile drives the exporters (clients × batch-span protobuf requests, as run does) beside the
// hostile senders for dur, and reports the share of the exporters' batches accepted and the server's
// peak RSS.
func runHostile(bin, admin string, clients, batch int, dur time.Duration) error {
	b, err := start(bin, admin, "owner")
	if err != nil {
		return err
	}
	defer b.close()
	jsonBody := hostileJSON(jsonBytes)
	bomb := gzipBomb(bombBytes)
	bodies := make([]body, 16)
	for i := range bodies {
		bodies[i] = marshal(request(batch, uint64(i)))
	}

	stop := make(chan struct{})
	peakRSS := watchRSS(b.srv.Process.Pid, stop)
	deadline := time.Now().Add(dur)
	var (
		wg       sync.WaitGroup
		seq      atomic.Uint64
		statuses sync.Map // sender kind -> *[600]atomic.Int64 by status code
	)
	count := func(kind string, code int) {
		v, _ := statuses.LoadOrStore(kind, new([600]atomic.Int64))
		v.(*[600]atomic.Int64)[min(max(code, 0), 599)].Add(1)
	}
	post := func(kind string, body []byte, header ...string) {
		req, _ := http.NewRequest(http.MethodPost, b.url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Authorization", "Bearer "+b.key)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			count(kind, 0)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		count(kind, resp.StatusCode)
	}
	loop := func(n int, fn func()) {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					fn()
				}
			}()
		}
	}
	loop(jsonSenders, func() { post("json 15 MiB", jsonBody, "Content-Type", "application/json") })
	loop(bombSenders, func() { post("gzip bomb", bomb, "Content-Encoding", "gzip") })
	loop(tricklers, func() { trickle(b.url, b.key, deadline); count("trickler", 1) })
	loop(clients, func() { post("exporter", bodies[seq.Add(1)%uint64(len(bodies))].withTraceIDs(seq.Add(1))) })
	wg.Wait()
	close(stop)

	fmt.Printf("hostile mix for %s: %d × %d MiB JSON, %d gzip bombs of %d GiB, %d trickling senders, %d exporters of %d-span batches\n",
		dur, jsonSenders, jsonBytes>>20, bombSenders, bombBytes>>30, tricklers, clients, batch)
	for _, kind := range []string{"exporter", "json 15 MiB", "gzip bomb", "trickler"} {
		v, ok := statuses.Load(kind)
		if !ok {
			continue
		}
		var total, ok200 int64
		var parts []string
		for code := range v.(*[600]atomic.Int64) {
			if n := v.(*[600]atomic.Int64)[code].Load(); n > 0 {
				total += n
				if code == 200 {
					ok200 = n
				}
				parts = append(parts, fmt.Sprintf("%d×%d", n, code))
			}
		}
		fmt.Printf("  %-12s %5d requests, %5.1f%% accepted (%v)\n", kind, total, 100*float64(ok200)/float64(max(total, 1)), parts)
	}
	fmt.Printf("server peak RSS: %d MB\n", peakRSS.Load()/1024)
	return nil
}

// trickle sends a request whose body arrives a byte every 100 ms, until the server answers or the
// deadline passes.
func trickle(url, key string, deadline time.Time) {
	u, _ := neturl.Parse(url)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		time.Sleep(100 * time.Millisecond)
		return
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-protobuf\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", u.Path, u.Host, key, trickleLength)
	answered := make(chan struct{})
	go func() {
		conn.Read(make([]byte, 1))
		close(answered)
	}()
	for time.Now().Before(deadline) {
		select {
		case <-answered:
			return
		case <-time.After(100 * time.Millisecond):
			if _, err := conn.Write([]byte{0x0a}); err != nil {
				return
			}
		}
	}
}

// hostileJSON is a valid OTLP/JSON request of about n bytes: client spans with hex ids.
func hostileJSON(n int) []byte {
	var out bytes.Buffer
	out.WriteString(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"bulk-json"}}]},"scopeSpans":[{"spans":[`)
	start := time.Now().Add(-time.Minute).UnixNano()
	for i := 0; out.Len() < n; i++ {
		if i > 0 {
			out.WriteByte(',')
		}
		fmt.Fprintf(&out, `{"traceId":"%032x","spanId":"%016x","name":"SELECT orders","kind":3,"startTimeUnixNano":"%d","endTimeUnixNano":"%d",`+
			`"attributes":[{"key":"db.system","value":{"stringValue":"postgresql"}},{"key":"db.statement","value":{"stringValue":"SELECT * FROM orders WHERE id = $1"}}]}`,
			rand.Uint64(), rand.Uint64(), start, start+5e6)
	}
	out.WriteString(`]}]}]}`)
	return out.Bytes()
}

func gzipBomb(n int) []byte {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for written := 0; written < n; written += len(zeros) {
		zw.Write(zeros)
	}
	zw.Close()
	return out.Bytes()
}
