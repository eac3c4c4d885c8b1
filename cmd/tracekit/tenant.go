package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/tracekit/tracekit/server/store"
)

const tenantUsage = `Usage (--database-url is the administrator's URL, as for migrate):
  tracekit tenant create <id> [--display-name N] [--reset-password]
  tracekit tenant list
  tracekit tenant delete <id>`

func runTenant(ctx context.Context, args []string) error { return tenantCommand(ctx, args, os.Stdout) }

// tenantCommand makes tenants without the operator, with the provisioning the operator calls
// (store.ProvisionTenant: tenant row, login role, grants). create prints the URL the tenant's
// `tracekit server` connects with.
func tenantCommand(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("missing subcommand\n" + tenantUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("tenant "+sub, flag.ContinueOnError)
	dbURL := databaseFlag(fs)
	display := fs.String("display-name", "", "a human-readable name for the tenant")
	reset := fs.Bool("reset-password", false, "create: for an existing tenant, give its role a new password (servers using the old URL stop connecting)")
	// The tenant id comes first, like `tracekit tenant create acme --display-name Acme`.
	var id string
	rest := args[1:]
	if len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		id, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	}
	if (sub == "create" || sub == "delete") && id == "" {
		return fmt.Errorf("%s needs the tenant id, e.g. tracekit tenant %s acme\n%s", sub, sub, tenantUsage)
	}
	db, err := openDB(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.CurrentTenant(ctx); err == nil {
		return errors.New("--database-url connects as a tenant's role; tenant commands need the administrator's URL (the one migrate uses)")
	}
	tenants, err := db.ListTenants(ctx)
	if err != nil {
		return err
	}
	exists := slices.ContainsFunc(tenants, func(t store.TenantInfo) bool { return t.ID == id })
	switch sub {
	case "create":
		if exists && !*reset {
			return fmt.Errorf("tenant %q already exists; its servers keep their database URL. To issue a new password run: tracekit tenant create %s --reset-password", id, id)
		}
		creds, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: id, DisplayName: *display})
		if err != nil {
			return err
		}
		tenantURL := *dbURL
		if creds.Role != "" {
			if tenantURL, err = creds.DSN(*dbURL); err != nil {
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "Created tenant %q. Its server connects with the URL below (shown once; it holds the role's password):\n"+
			"  tracekit server --database-url '<URL>'\nand needs an API key: tracekit apikey create --tenant %s --database-url <admin URL>\n", id, id)
		fmt.Fprintln(out, tenantURL)
	case "list":
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tDISPLAY NAME\tDATABASE ROLE\tCREATED")
		for _, t := range tenants {
			role := "-"
			if t.DBRole != nil && *t.DBRole != "" {
				role = *t.DBRole
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.ID, t.DisplayName, role, time.Unix(0, t.CreatedNS).UTC().Format(time.RFC3339))
		}
		return w.Flush()
	case "delete":
		if !exists {
			return fmt.Errorf("tenant %q does not exist (see tracekit tenant list)", id)
		}
		if err := db.Admin().DeleteTenant(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(out, "deleted tenant %q with all its data and its database role\n", id)
	default:
		return fmt.Errorf("unknown subcommand %q\n%s", sub, tenantUsage)
	}
	return nil
}
