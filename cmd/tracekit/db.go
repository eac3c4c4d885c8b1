package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"

	"github.com/tracekit/tracekit/internal/tenantconfig"
	"github.com/tracekit/tracekit/server/store"
)

// defaultDataDir is where `tracekit dev` keeps its state; other commands find the dev database there.
const defaultDataDir = ".tracekit"

// devTenant is the one tenant of dev mode.
const devTenant = "default"

func devDatabaseURL(dataDir string) string {
	return "sqlite:" + filepath.Join(dataDir, "tracekit.db")
}

// databaseFlag registers --database-url, defaulting to $TRACEKIT_DATABASE_URL, then the dev database.
func databaseFlag(fs *flag.FlagSet) *string {
	def := os.Getenv(tenantconfig.EnvDatabaseURL)
	if def == "" {
		def = devDatabaseURL(defaultDataDir)
	}
	return fs.String("database-url", def, "postgres://user:pass@host/db URL or sqlite:<path> ($TRACEKIT_DATABASE_URL)")
}

// envOrUnset is envOr where a variable set to the empty string counts (e.g. to turn a listener off).
func envOrUnset(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// openDB connects and, unless the connection is a tenant's own role (which may not change the
// schema; its provisioner migrates), brings the schema up to date.
func openDB(ctx context.Context, url string) (*store.DB, error) {
	db, err := store.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	if _, err := db.CurrentTenant(ctx); err == nil {
		return db, nil
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
