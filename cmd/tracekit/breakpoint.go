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

	"github.com/tracekit/tracekit/server/debugger"
	"github.com/tracekit/tracekit/server/store"
)

const breakpointUsage = `Usage:
  tracekit breakpoint create --tenant T --service S [--condition EXPR] [--hit-limit N] [--expires 1h] <file>:<line>
  tracekit breakpoint create --tenant T --service S --label NAME [--condition EXPR] …
  tracekit breakpoint list   --tenant T [--service S]
  tracekit breakpoint delete --tenant T <breakpoint id>

A label matches the debugger.Capture calls given that label, wherever they are in the code.
Conditions use the variables captured there: amount > 1000 && user.country == 'DE'.
Agents of the service pick new breakpoints up within 30 seconds (GET /v1/breakpoints); the same
operations are available over HTTP with an API key that has the write scope.`

func runBreakpoint(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("missing subcommand\n%s", breakpointUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("breakpoint "+sub, flag.ContinueOnError)
	dbURL := databaseFlag(fs)
	tenant := fs.String("tenant", envOr("TRACEKIT_TENANT", devTenant), "tenant id ($TRACEKIT_TENANT)")
	service := fs.String("service", "", "service.name of the application to debug")
	label := fs.String("label", "", "capture at the debugger.Capture calls with this label instead of at <file>:<line>")
	condition := fs.String("condition", "", "capture only when this expression, evaluated by the agent, is true")
	hitLimit := fs.Int("hit-limit", debugger.DefaultHitLimit, "stop after this many captures (0: unlimited)")
	expires := fs.Duration("expires", debugger.DefaultExpiry, "stop capturing after this long (at most 168h)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	db, err := openDB(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	t := db.ForTenant(*tenant)
	now := time.Now()
	switch sub {
	case "create":
		var file string
		var line int
		switch {
		case *label != "" && fs.NArg() == 0:
		case *label == "" && fs.NArg() == 1:
			if file, line, err = location(fs.Arg(0)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("create needs the location as <file>:<line>, or --label NAME\n%s", breakpointUsage)
		}
		b, err := debugger.NewBreakpoint(debugger.Spec{Service: *service, File: file, Line: line, Label: *label,
			Condition: *condition, HitLimit: hitLimit, ExpiresIn: expires.String()}, now)
		if err != nil {
			return err
		}
		if err := t.CreateBreakpoint(ctx, b); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "Created breakpoint at %s in %s, expiring %s.\n", where(b), b.Service,
			time.Unix(0, b.ExpiresNS).UTC().Format(time.RFC3339))
		fmt.Println(b.ID)
	case "list":
		bps, err := t.Breakpoints(ctx, *service)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tSERVICE\tLOCATION\tCONDITION\tHITS\tEXPIRES\tSTATE")
		for _, b := range bps {
			hits := strconv.Itoa(b.HitCount)
			if b.HitLimit > 0 {
				hits += "/" + strconv.Itoa(b.HitLimit)
			}
			expiry := "never"
			if b.ExpiresNS != 0 {
				expiry = time.Unix(0, b.ExpiresNS).UTC().Format(time.RFC3339)
			}
			state := "active"
			switch {
			case b.HitLimit > 0 && b.HitCount >= b.HitLimit:
				state = "hit limit reached"
			case !b.Active(now.UnixNano()):
				state = "expired"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Service, where(b.Breakpoint), b.Condition, hits, expiry, state)
		}
		return w.Flush()
	case "delete":
		if fs.NArg() != 1 {
			return fmt.Errorf("delete needs the breakpoint id (see 'tracekit breakpoint list')\n%s", breakpointUsage)
		}
		if err := t.DeleteBreakpoint(ctx, fs.Arg(0), now.UnixNano()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no breakpoint %s in tenant %q (see 'tracekit breakpoint list')", fs.Arg(0), *tenant)
			}
			return err
		}
		fmt.Printf("deleted %s; agents stop capturing it at their next poll\n", fs.Arg(0))
	default:
		return fmt.Errorf("unknown subcommand %q\n%s", sub, breakpointUsage)
	}
	return nil
}

// where is a breakpoint's location as people write it: file:line, or "label NAME".
func where(b store.Breakpoint) string {
	if b.Line == 0 {
		return "label " + b.File
	}
	return fmt.Sprintf("%s:%d", b.File, b.Line)
}

// location splits "path/to/file.go:42".
func location(s string) (string, int, error) {
	i := strings.LastIndex(s, ":")
	if i <= 0 {
		return "", 0, fmt.Errorf("location %q: want <file>:<line>, e.g. checkout/handler.go:42", s)
	}
	line, err := strconv.Atoi(s[i+1:])
	if err != nil {
		return "", 0, fmt.Errorf("location %q: the line after ':' must be a number", s)
	}
	return s[:i], line, nil
}
