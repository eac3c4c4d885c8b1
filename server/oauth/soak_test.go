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

	st := &soakStats{refusals: map[string]int{}}
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for i, g := range grants {
		wg.Go(func() { st.refreshUntil(t, tn, g, uint64(i), deadline) })
	}
	wg.Wait()
	slices.Sort(st.latencies)
	q := func(p float64) time.Duration { return st.latencies[int(p*float64(len(st.latencies)-1))] }
	t.Logf("%s: %d refreshes (%d concurrent bursts, %d inside the reuse interval), %d server errors, %d wrong scopes, refusals %v; latency p50 %s p99 %s max %s",
		duration, st.refreshes, st.concurrent, st.soon, st.serverErrors, st.wrongScope, st.refusals,
		q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), q(1).Round(time.Millisecond))
	for code, n := range st.refusals {
		if code != "invalid_grant" {
			t.Errorf("%d refusals answered %q, want invalid_grant", n, code)
		}
	}
	if len(st.refusals) > 0 {
		t.Errorf("grants ended during the soak: %v (a client refreshing as above must keep its grant)", st.refusals)
	}
}

// soakStats counts what the soak's grants saw.
type soakStats struct {
	mu                                                    sync.Mutex
	refreshes, concurrent, soon, serverErrors, wrongScope int
	refusals                                              map[string]int
	latencies                                             []time.Duration
}

type soakAnswer struct {
	status int
	tok    tokenResponse
	took   time.Duration
	err    error
}

// refreshUntil refreshes g until deadline, after random pauses of 0–4.5 s, a third of the time as 2–3
// concurrent requests with the same token; it stops when the grant is refused.
func (st *soakStats) refreshUntil(t *testing.T, tn *tenant, g *grantClient, seed uint64, deadline time.Time) {
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	last := time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(rng.Int64N(int64(4500 * time.Millisecond))))
		n := 1
		if rng.IntN(3) == 0 {
			n = 2 + rng.IntN(2)
		}
		soon := time.Since(last) < 3*time.Second
		answers := make([]soakAnswer, n)
		var burst sync.WaitGroup
		for i := range answers {
			burst.Go(func() {
				start := time.Now()
				status, tok, err := refreshOnce(tn, g.clientID, g.tok.RefreshToken)
				answers[i] = soakAnswer{status, tok, time.Since(start), err}
			})
		}
		burst.Wait()
		last = time.Now()
		if !st.record(t, g, answers, soon) {
			return
		}
	}
}

// record counts a burst's answers, keeps the grant's new token, and reports whether the grant lives on.
func (st *soakStats) record(t *testing.T, g *grantClient, answers []soakAnswer, soon bool) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.refreshes += len(answers)
	if len(answers) > 1 {
		st.concurrent++
	}
	if soon {
		st.soon++
	}
	alive := true
	for _, a := range answers {
		st.latencies = append(st.latencies, a.took)
		switch {
		case a.err != nil:
			t.Errorf("grant %v: %v", g.tools, a.err)
			alive = false
		case a.status >= 500:
			st.serverErrors++
			t.Errorf("grant %v: %d %+v", g.tools, a.status, a.tok)
		case a.status != http.StatusOK:
			st.refusals[a.tok.Error]++
			alive = false
		case a.tok.Scope != wantScope(g.tools):
			st.wrongScope++
			t.Errorf("grant %v got scope %q", g.tools, a.tok.Scope)
		default:
			g.tok = a.tok
		}
	}
	return alive
}
