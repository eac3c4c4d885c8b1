package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRetentionFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		def  string
		want time.Duration
		err  string
	}{
		{def: "720h0m0s", want: 720 * time.Hour}, // what the operator writes
		{def: "", want: 0},
		{args: []string{"--retention=1h"}, def: "720h", want: time.Hour},
		{args: []string{"--retention", "3x"}, err: `--retention "3x": not a duration; use hours like 720h (30 days)`},
		{args: []string{"--retention=30d"}, err: `--retention "30d": not a duration`},
		{args: []string{"--retention=59m"}, err: `--retention "59m": shorter than the minimum of 1h`},
		{args: []string{"--retention=0"}, err: `--retention "0": shorter than the minimum of 1h; use hours like 720h (30 days), or leave it empty to keep data forever`},
		{args: []string{"--retention=-2h"}, err: `--retention "-2h": shorter`},
		{def: "30m", err: `$TRACEKIT_RETENTION "30m": shorter than the minimum of 1h`},
	} {
		fs := flag.NewFlagSet("server", flag.ContinueOnError)
		retention := retentionFlag(fs, c.def, "TRACEKIT_RETENTION", "")
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		got, err := retention()
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%v default %q: %v, %v; want %v", c.args, c.def, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v default %q: error %v, want one containing %q", c.args, c.def, err, c.err)
		}
	}
}

// TestRetentionValidatedBeforeStart: a bad value stops server and dev before they touch a database.
func TestRetentionValidatedBeforeStart(t *testing.T) {
	t.Setenv("TRACEKIT_RETENTION", "3x")
	db := filepath.Join(t.TempDir(), "tracekit.db")
	t.Setenv("TRACEKIT_DATABASE_URL", "sqlite:"+db)
	if err := runServer(context.Background(), nil); err == nil || !strings.Contains(err.Error(), `$TRACEKIT_RETENTION "3x": not a duration`) {
		t.Errorf("server with TRACEKIT_RETENTION=3x: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	err := runDev(context.Background(), []string{"--data-dir", dir, "--retention", "10m"})
	if err == nil || !strings.Contains(err.Error(), `--retention "10m": shorter than the minimum of 1h`) {
		t.Errorf("dev --retention 10m: %v", err)
	}
	for _, p := range []string{db, dir} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists (%v): created before the flags were checked", p, err)
		}
	}
}
