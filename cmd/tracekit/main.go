// Command tracekit is the single binary of the platform; each subcommand wires flags to constructors.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"dev":        {"run everything on this machine: SQLite, embedded auth, demo data (make run)", runDev},
	"server":     {"run a tenant's MCP and ingest server", runServer},
	"auth":       {"run the Dex-backed authorization server", runAuth},
	"manager":    {"run the TraceKitTenant and TraceKitDatabase controllers", runManager},
	"demo":       {"send a day of demo traffic to an ingest endpoint", runDemo},
	"apikey":     {"create, list or revoke a tenant's API keys", runAPIKey},
	"audit":      {"print the audit trail: key creations, revocations, refused sign-ins", runAudit},
	"migrate":    {"bring a database schema up to date", runMigrate},
	"breakpoint": {"create, list or delete live-debugging breakpoints", runBreakpoint},
	"tenant":     {"create, list or delete tenants on PostgreSQL without the operator", runTenant},
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "tracekit: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "tracekit %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "Usage: tracekit <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'tracekit <command> -h' for a command's flags.")
}
