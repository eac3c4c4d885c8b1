package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/demo"
	"github.com/tracekit/tracekit/server/store"
)

// volume is the large-tenant benchmark (docs/benchmarks.md, "At volume"): several days of demo
// traffic loaded a day at a time into a named database that is kept, so a load cut short resumes
// at the day it reached:
//
//	go run ./hack/mcpbench -database-name tracekit_bench50m -spans 50000000 -days 7 -end 2026-12-05T00:00:00Z -load-only
//	go run ./hack/mcpbench -database-name tracekit_bench50m -spans 50000000 -days 7 -end 2026-12-05T00:00:00Z -from-day 3 -load-only
//	go run ./hack/mcpbench -database-url postgres://…/tracekit_bench50m -clients 1 -rca 20 -drop-day
type volume struct {
	name     string
	days     int
	fromDay  int
	end      string
	loadOnly bool
	rca      int
	dropDay  bool
}

func volumeFlags() *volume {
	v := &volume{}
	flag.StringVar(&v.name, "database-name", "", "load into (and keep) the database of this name, created if missing, instead of a scratch one")
	flag.IntVar(&v.days, "days", 1, "days of traffic the spans are spread over, loaded a day at a time")
	flag.IntVar(&v.fromDay, "from-day", 0, "resume a load at this day (0 is the newest, as the progress lines print); days before it are not sent again")
	flag.StringVar(&v.end, "end", "", "RFC 3339 time the traffic ends (default now); pass the printed value to resume")
	flag.BoolVar(&v.loadOnly, "load-only", false, "load, then stop without measuring")
	flag.IntVar(&v.rca, "rca", 0, "also call get_rca on up to this many anomalies, one at a time, and report its p50/p95")
	flag.BoolVar(&v.dropDay, "drop-day", false, "at the end, drop the tenant's oldest day of spans, LLM calls and snapshots (retention) and report the time it took")
	return v
}

// database creates the named database if it does not exist and returns its URL.
func (v *volume) database(ctx context.Context, admin string) (string, error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", v.name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{v.name}.Sanitize()); err != nil {
			return "", err
		}
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", err
	}
	u.Path = "/" + v.name
	return u.String(), nil
}

// load sends spans of demo traffic through OTLP, a day (its own seed) at a time, day 0 ending at end
// and each next one the day before.
func (v *volume) load(ctx context.Context, base, key string, spans int) error {
	end := time.Now().Truncate(time.Minute)
	if v.end != "" {
		var err error
		if end, err = time.Parse(time.RFC3339, v.end); err != nil {
			return fmt.Errorf("-end %q: want an RFC 3339 time such as 2026-12-05T00:00:00Z", v.end)
		}
	}
	if v.days < 1 || v.fromDay < 0 || v.fromDay >= v.days {
		return fmt.Errorf("-days %d -from-day %d: want days ≥ 1 and 0 ≤ from-day < days", v.days, v.fromDay)
	}
	fmt.Printf("loading %d spans over %d days ending %s\n", spans, v.days, end.UTC().Format(time.RFC3339))
	perDay := spans / v.days
	start := time.Now()
	total := 0
	for d := v.fromDay; d < v.days; d++ {
		// Newest day first: a load cut short still has the recent data the tools' windows look at.
		dayEnd := end.Add(-time.Duration(d) * 24 * time.Hour)
		res, err := demo.Run(ctx, demo.Options{End: dayEnd, Duration: 24 * time.Hour, Traces: perDay / 9, Seed: int64(1 + d)},
			demo.Sender{URL: base, APIKey: key}, func(done, _ int) {
				if done%1_000_000 < demo.DefaultBatchSpans {
					fmt.Fprintf(os.Stderr, "%s day %d: %d spans, %d before this day, %s elapsed\n",
						time.Now().UTC().Format(time.TimeOnly), d, done, total, time.Since(start).Round(time.Second))
				}
			})
		if err != nil {
			return fmt.Errorf("day %d (resume with -from-day %d -end %s): %w", d, d, end.UTC().Format(time.RFC3339), err)
		}
		total += res.Spans
		fmt.Printf("day %d loaded: %d spans, %d LLM calls; %d spans in %s (resume after it with -from-day %d -end %s)\n",
			d, res.Spans, res.LLMCalls, total, time.Since(start).Round(time.Second), d+1, end.UTC().Format(time.RFC3339))
	}
	return nil
}

// measureRCA calls get_rca on up to n anomalies, one call at a time.
func measureRCA(ctx context.Context, base, key string, n int) error {
	s, err := connect(ctx, base, key)
	if err != nil {
		return err
	}
	defer s.Close()
	var found struct {
		Anomalies []struct {
			ID string `json:"id"`
		} `json:"anomalies"`
	}
	if err := callInto(ctx, s, "search_anomalies", map[string]any{"since": "168h"}, &found); err != nil {
		return err
	}
	var lat []time.Duration
	for _, a := range found.Anomalies[:min(n, len(found.Anomalies))] {
		t0 := time.Now()
		res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "get_rca", Arguments: map[string]any{"anomaly_id": a.ID}})
		if err != nil || res.IsError {
			return fmt.Errorf("get_rca %s: %v %v", a.ID, err, res)
		}
		lat = append(lat, time.Since(t0))
	}
	if len(lat) == 0 {
		fmt.Println("\nget_rca: no anomalies to analyse")
		return nil
	}
	slices.Sort(lat)
	fmt.Printf("\nget_rca, one client, %d anomalies: p50 %.1f ms, p95 %.1f ms, max %.1f ms\n", len(lat),
		ms(lat[len(lat)/2]), ms(lat[len(lat)*95/100]), ms(lat[len(lat)-1]))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// storage prints the disk the tenant's spans take per span, heap (with TOAST) and indexes.
func storage(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var n, heap, indexes, llm int64
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM spans),
		COALESCE(sum(pg_table_size(relid)), 0), COALESCE(sum(pg_indexes_size(relid)), 0),
		(SELECT COALESCE(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree('llm_calls'))
		FROM pg_partition_tree('spans') WHERE isleaf`).Scan(&n, &heap, &indexes, &llm)
	if err != nil || n == 0 {
		return err
	}
	fmt.Printf("\nstorage: %d spans, %.0f bytes per span (heap %.0f, indexes %.0f); LLM calls %d MB\n", n,
		float64(heap+indexes)/float64(n), float64(heap)/float64(n), float64(indexes)/float64(n), llm>>20)
	return nil
}

// dropOldestDay runs the tenant's retention (store.DeleteOlderThan, as the server's job does) with the
// cutoff at the end of its oldest day, timed: every table that expires with retention loses that
// day's partition.
func dropOldestDay(ctx context.Context, db *store.DB, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var oldest *int64
	if err := conn.QueryRow(ctx, `SELECT min(start_ns) FROM spans WHERE tenant_id = $1`, tenant).Scan(&oldest); err != nil || oldest == nil {
		return err
	}
	before := (*oldest/store.Day + 1) * store.Day
	var rows int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM spans WHERE tenant_id = $1 AND start_ns < $2`, tenant, before).Scan(&rows); err != nil {
		return err
	}
	t0 := time.Now()
	e, err := db.ForTenant(tenant).DeleteOlderThan(ctx, before, 1)
	if err != nil {
		return err
	}
	fmt.Printf("\nretention of a day: dropped %v (%d spans) in %.1f ms\n", e.Partitions, rows, ms(time.Since(t0)))
	return nil
}
