package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tracekit/tracekit/server/demo"
)

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	target := fs.String("url", envOr("TRACEKIT_URL", "http://127.0.0.1:8080"), "base URL of the ingest endpoint (POST <url>/v1/traces)")
	key := fs.String("api-key", os.Getenv("TRACEKIT_API_KEY"), "API key with the ingest scope ($TRACEKIT_API_KEY)")
	traces := fs.Int("traces", 0, "number of traces over the window (0: the default day of traffic)")
	window := fs.Duration("duration", 24*time.Hour, "length of the window of traffic, ending now")
	seed := fs.Int64("seed", 1, "random seed; the same seed gives the same traffic")
	concurrency := fs.Int("concurrency", 4, "concurrent export requests")
	incidents := fs.String("incidents", "demo-incidents.json", "file to write the labelled incidents to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		return errors.New("--api-key (or $TRACEKIT_API_KEY) is required: create one with 'tracekit apikey create'")
	}
	res, err := loadDemo(ctx, demo.Options{End: time.Now(), Duration: *window, Traces: *traces, Seed: *seed},
		demo.Sender{URL: strings.TrimRight(*target, "/"), APIKey: *key, Concurrency: *concurrency}, *incidents)
	if err != nil {
		return err
	}
	fmt.Printf("sent %d spans in %d traces (%d LLM calls); %d labelled incidents written to %s\n",
		res.Spans, res.Traces, res.LLMCalls, len(res.Incidents), *incidents)
	return nil
}

// loadDemo sends the demo traffic with a progress bar on stderr and writes its incident labels.
func loadDemo(ctx context.Context, opts demo.Options, s demo.Sender, incidentsPath string) (demo.Result, error) {
	start := time.Now()
	res, err := demo.Run(ctx, opts, s, progressBar("Loading demo data", start))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return res, fmt.Errorf("load demo data: %w", err)
	}
	if err := demo.WriteIncidents(incidentsPath, res.Incidents); err != nil {
		return res, err
	}
	return res, nil
}

func progressBar(label string, start time.Time) func(done, total int) {
	return func(done, total int) {
		if total <= 0 {
			total = max(done, 1)
		}
		const width = 30
		filled := min(width, done*width/total)
		fmt.Fprintf(os.Stderr, "\r%s [%s%s] %3d%%  %d spans  %.1fs", label, strings.Repeat("#", filled),
			strings.Repeat(".", width-filled), min(100, done*100/total), done, time.Since(start).Seconds())
	}
}
