package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tracekit/tracekit/server/store"
)

const auditUsage = `Usage: tracekit audit [--tenant T] [--since 24h|2026-01-02|RFC 3339 time] [--limit N] [--json]`

func runAudit(ctx context.Context, args []string) error { return auditCommand(ctx, args, os.Stdout) }

// auditCommand prints the audit trail: who created and revoked keys, and refused sign-ins, when and
// from where. It reads every tenant's trail with the administrator's URL, or the tenant's own with
// a tenant's URL (RLS confines it).
func auditCommand(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	dbURL := databaseFlag(fs)
	tenant := fs.String("tenant", os.Getenv("TRACEKIT_TENANT"), "only this tenant's events ($TRACEKIT_TENANT); empty: every tenant")
	since := fs.String("since", "", "only events since: a duration back from now (24h, 30m), a date (2026-01-02, UTC) or an RFC 3339 time")
	limit := fs.Int("limit", 1000, "at most this many events, the newest")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q\n%s", fs.Arg(0), auditUsage)
	}
	f := store.AuditFilter{Tenant: *tenant, Limit: *limit}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return err
		}
		f.Since = t
	}
	db, err := openDB(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	events, err := db.Admin().AuditEvents(ctx, f)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		for _, e := range events {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tTENANT\tACTION\tTARGET\tACTOR\tFROM\tDETAIL")
	for _, e := range events {
		from := e.IP
		if e.UserAgent != "" {
			from += " " + e.UserAgent
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.TenantID, e.Action, clean(e.Target), clean(e.Actor), clean(from), clean(e.Detail))
	}
	return w.Flush()
}

// clean keeps one event on one line: its fields come from requests.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// parseSince reads --since: a duration before now, a date or an RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--since %s: give a positive duration such as 24h", v)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("--since " + v + ": use a duration (24h), a date (2026-01-02) or an RFC 3339 time (2026-01-02T15:04:05Z)")
}
