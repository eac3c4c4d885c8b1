package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tracekit/tracekit/server/store"
)

const apikeyUsage = `Usage:
  tracekit apikey create --tenant T [--name N] [--scopes read,ingest,write]
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
		key, info, err := db.Admin().CreateAPIKey(ctx, *tenant, *name, strings.Split(*scopes, ","))
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "Created key %s (%s) for tenant %q with scopes %s. It is shown once; store it now.\n", info.ID, info.Prefix, *tenant, info.Scopes)
		fmt.Println(key)
	case "list":
		keys, err := t.APIKeys(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tPREFIX\tNAME\tSCOPES\tCREATED\tSTATE")
		for _, k := range keys {
			state := "active"
			if k.RevokedNS != 0 {
				state = "revoked " + time.Unix(0, k.RevokedNS).UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%s…\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Name, k.Scopes, time.Unix(0, k.CreatedNS).UTC().Format(time.RFC3339), state)
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
