package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tracekit/tracekit/server/store"
)

const apikeyUsage = `Usage:
  tracekit apikey create --tenant T [--name N] [--scopes read,ingest,write] [--expires 90d|2026-12-31]
  tracekit apikey list   --tenant T
  tracekit apikey revoke --tenant T <key id or prefix>`

func runAPIKey(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("missing subcommand\n" + apikeyUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("apikey "+sub, flag.ContinueOnError)
	dbURL := databaseFlag(fs)
	tenant := fs.String("tenant", envOr("TRACEKIT_TENANT", devTenant), "tenant id ($TRACEKIT_TENANT)")
	name := fs.String("name", "", "a label for the key, e.g. who or what uses it")
	scopes := fs.String("scopes", strings.Join(store.DefaultScopes, ","), "comma-separated scopes: read, ingest, write")
	expires := fs.String("expires", "", "create: when the key stops working: a number of days (90d), a date (2026-12-31, the key works through it, UTC) or an RFC 3339 time; empty: never")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	db, err := openDB(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	t := db.ForTenant(*tenant)
	switch sub {
	case "create":
		exp, err := parseExpiry(*expires, time.Now())
		if err != nil {
			return err
		}
		key, info, err := t.CreateAPIKey(ctx, store.NewAPIKey{Name: *name, Scopes: strings.Split(*scopes, ","), Expires: exp})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "Created key %s (%s) for tenant %q with scopes %s%s. It is shown once; store it now.\n", info.ID, info.Prefix, *tenant, info.Scopes, expiryNote(exp))
		fmt.Println(key)
	case "list":
		keys, err := t.APIKeys(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tPREFIX\tNAME\tSCOPES\tCREATED\tEXPIRES\tSTATE")
		for _, k := range keys {
			state, expiry := "active", "never"
			if k.ExpiresNS != 0 {
				expiry = time.Unix(0, k.ExpiresNS).UTC().Format(time.RFC3339)
			}
			switch {
			case k.RevokedNS != 0:
				state = "revoked " + time.Unix(0, k.RevokedNS).UTC().Format(time.RFC3339)
			case k.Expired(time.Now()):
				state = "expired"
			}
			fmt.Fprintf(w, "%s\t%s…\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Name, k.Scopes, time.Unix(0, k.CreatedNS).UTC().Format(time.RFC3339), expiry, state)
		}
		return w.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New("revoke needs the key's id or prefix (see 'tracekit apikey list')\n" + apikeyUsage)
		}
		if err := db.Admin().RevokeAPIKey(ctx, *tenant, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Printf("revoked %s; running servers stop accepting it within 30 seconds\n", fs.Arg(0))
	default:
		return fmt.Errorf("unknown subcommand %q\n%s", sub, apikeyUsage)
	}
	return nil
}

// parseExpiry reads --expires: "" (never), a number of days ("90d"), a date (the key works through
// it, UTC) or an RFC 3339 time.
func parseExpiry(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n > 0 {
			return now.AddDate(0, 0, n), nil
		}
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.Add(24 * time.Hour), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--expires %q: use a number of days (90d), a date (2026-12-31) or an RFC 3339 time", v)
}

func expiryNote(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return ", expiring " + t.UTC().Format(time.RFC3339)
}
