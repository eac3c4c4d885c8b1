package oauth_test

import (
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestRefreshSoak runs 2 clients × 3 sign-ins on one API key, each with its own tool groups, refreshing
// at random intervals for TRACEKIT_REFRESH_SOAK (a Go duration, 20s by default): some refreshes come
// inside Dex's 3 s reuse interval, some as 2–3 concurrent requests with the same token. No answer may
// be a server error, every grant must keep exactly its own tool groups, and any refusal must be
// invalid_grant. `TRACEKIT_REFRESH_SOAK=2m go test ./server/oauth -run TestRefreshSoak -v` prints the
// figures recorded in docs/auth.md.
func TestRefreshSoak(t *testing.T) {
	duration := 20 * time.Second
	if v := os.Getenv("TRACEKIT_REFRESH_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TRACEKIT_REFRESH_SOAK=%q: want a duration such as 2m", v)
		}
		duration = d
	}
	e := newEnv(t, envOptions{}, "acme") // Dex's default reuse interval, 3 s
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	toolSets := [][]string{{"traces"}, {"metrics"}, {"llm", "debugging"}, {"traces", "metrics"}, {"debugging"}, {"traces", "metrics", "llm", "debugging"}}
	var grants []*grantClient
	for c := range 2 {
		clientID := e.registerClient(t, tn, redirect)
		for i := range 3 {
			g := e.signInWithTools(t, tn, clientID, redirect, toolSets[c*3+i])
			grants = append(grants, &g)
		}
	}

	type stats struct {
		refreshes, concurrent, soon, serverErrors, wrongScope int
		refusals                                              map[string]int
		latencies                                             []time.Duration
	}
	var mu sync.Mutex
	all := stats{refusals: map[string]int{}}
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for gi, g := range grants {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(gi), uint64(time.Now().UnixNano())))
			last := time.Now()
			for time.Now().Before(deadline) {
				time.Sleep(time.Duration(rng.Int64N(int64(4500 * time.Millisecond))))
				n := 1
				if rng.IntN(3) == 0 {
					n = 2 + rng.IntN(2)
				}
				soon := time.Since(last) < 3*time.Second
				type answer struct {
					status int
					tok    tokenResponse
					took   time.Duration
					err    error
				}
				answers := make([]answer, n)
				var burst sync.WaitGroup
				for i := range answers {
					burst.Go(func() {
						start := time.Now()
						status, tok, err := refreshOnce(tn, g.clientID, g.tok.RefreshToken)
						answers[i] = answer{status, tok, time.Since(start), err}
					})
				}
				burst.Wait()
				last = time.Now()
				mu.Lock()
				all.refreshes += n
				if n > 1 {
					all.concurrent++
				}
				if soon {
					all.soon++
				}
				ended := false
				for _, a := range answers {
					all.latencies = append(all.latencies, a.took)
					switch {
					case a.err != nil:
						t.Errorf("grant %v: %v", g.tools, a.err)
						ended = true
					case a.status >= 500:
						all.serverErrors++
						t.Errorf("grant %v: %d %+v", g.tools, a.status, a.tok)
					case a.status != http.StatusOK:
						all.refusals[a.tok.Error]++
						ended = true
					case a.tok.Scope != wantScope(g.tools):
						all.wrongScope++
						t.Errorf("grant %v got scope %q", g.tools, a.tok.Scope)
					default:
						g.tok = a.tok
					}
				}
				mu.Unlock()
				if ended {
					return
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(all.latencies)
	q := func(p float64) time.Duration { return all.latencies[int(p*float64(len(all.latencies)-1))] }
	t.Logf("%s: %d refreshes (%d concurrent bursts, %d inside the reuse interval), %d server errors, %d wrong scopes, refusals %v; latency p50 %s p99 %s max %s",
		duration, all.refreshes, all.concurrent, all.soon, all.serverErrors, all.wrongScope, all.refusals,
		q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), q(1).Round(time.Millisecond))
	for code, n := range all.refusals {
		if code != "invalid_grant" {
			t.Errorf("%d refusals answered %q, want invalid_grant", n, code)
		}
	}
	if len(all.refusals) > 0 {
		t.Errorf("grants ended during the soak: %v (a client refreshing as above must keep its grant)", all.refusals)
	}
}
