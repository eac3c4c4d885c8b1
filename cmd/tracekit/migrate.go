package main

import (
	"context"
	"flag"
	"fmt"
)

func runMigrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	dbURL := databaseFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, err := openDB(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Printf("schema of the %s database is up to date\n", db.Dialect())
	return nil
}
