package ingest_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/ingest"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// TestMain lets the crash test re-run this binary as a receiver process it can kill.
func TestMain(m *testing.M) {
	if dsn := os.Getenv("TRACEKIT_INGEST_CHILD_DSN"); dsn != "" {
		runChild(dsn)
		return
	}
	os.Exit(m.Run())
}

func runChild(dsn string) {
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	ingest.Register(r, ingest.Config{DB: db, Auth: &auth.APIKeys{DB: db}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	_ = http.Serve(ln, r)
}

// TestExport_NothingAcknowledgedIsLostWhenTheServerIsKilled sends batches from several clients,
// kills the receiver with SIGKILL mid-stream, and checks that every acknowledged batch is stored
// whole, and that no batch is stored in part.
func TestExport_NothingAcknowledgedIsLostWhenTheServerIsKilled(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	e := newEnv(t, dsn, ingest.Config{})

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TRACEKIT_INGEST_CHILD_DSN="+dsn)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.HasPrefix(line, "error") {
		t.Fatalf("receiver process did not start: %q %v", line, err)
	}
	url := "http://" + strings.TrimSpace(line) + "/v1/traces"

	const spansPerBatch = 500
	var (
		mu    sync.Mutex
		acked []int
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				trace := int(next.Add(1))
				body := marshal(t, request("svc", trace, spansPerBatch))
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/x-protobuf")
				req.Header.Set("Authorization", "Bearer "+e.key)
				resp, err := client.Do(req)
				if err != nil {
					return // the receiver is gone
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					acked = append(acked, trace)
					mu.Unlock()
				}
			}
		}()
	}
	// Kill once a good number of batches is acknowledged, while others are in flight.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 40 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	wg.Wait()
	if len(acked) < 40 {
		t.Fatalf("only %d batches acknowledged before the deadline", len(acked))
	}

	for _, trace := range acked {
		tid := hex.EncodeToString(id(trace, 16))
		if n := storetest.QueryInt(t, dsn, "SELECT count(*) FROM spans WHERE trace_id = '"+tid+"'"); n != spansPerBatch {
			t.Errorf("acknowledged batch %d: %d of %d spans stored", trace, n, spansPerBatch)
		}
	}
	partial := storetest.QueryInt(t, dsn, fmt.Sprintf("SELECT count(*) FROM (SELECT trace_id FROM spans GROUP BY trace_id HAVING count(*) <> %d) p", spansPerBatch))
	if partial != 0 {
		t.Errorf("%d batches stored in part", partial)
	}
	total := storetest.Count(t, dsn, "spans", "acme") / spansPerBatch
	t.Logf("sent %d batches, %d acknowledged before the kill, %d stored (committed but unacknowledged ones may be resent by a real exporter)", next.Load(), len(acked), total)
}
