package dexauth

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/dexidp/dex/storage"
	"github.com/dexidp/dex/storage/memory"
	dexsql "github.com/dexidp/dex/storage/sql"
)

// OpenStorage opens Dex's storage: "memory", a postgres:// URL (clusters: every replica shares it),
// or sqlite:<path> (dev mode; needs a cgo build).
func OpenStorage(dsn string, logger *slog.Logger) (storage.Storage, error) {
	switch {
	case dsn == "memory":
		return memory.New(logger), nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		cfg, err := postgresConfig(dsn)
		if err != nil {
			return nil, err
		}
		s, err := cfg.Open(logger)
		if err != nil {
			return nil, fmt.Errorf("open Dex storage on PostgreSQL: %w", err)
		}
		return s, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//"), logger)
	}
	return nil, fmt.Errorf("the Dex storage %q: want memory, postgres://user@host/db or sqlite:<path>", dsn)
}

// postgresConfig translates a URL into Dex's PostgreSQL settings. Without sslmode, a loopback
// server is reached without TLS and any other with verified TLS, Dex's default.
func postgresConfig(dsn string) (*dexsql.Postgres, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("the Dex storage URL: %w", err)
	}
	cfg := &dexsql.Postgres{}
	cfg.Host = u.Hostname()
	if p := u.Port(); p != "" {
		port, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("the Dex storage URL: port %q", p)
		}
		cfg.Port = uint16(port)
	}
	cfg.Database = strings.TrimPrefix(u.Path, "/")
	cfg.User = u.User.Username()
	cfg.Password, _ = u.User.Password()
	cfg.ConnectionTimeout = 10
	cfg.SSL.Mode = u.Query().Get("sslmode")
	if ip := net.ParseIP(cfg.Host); cfg.SSL.Mode == "" && (cfg.Host == "localhost" || (ip != nil && ip.IsLoopback())) {
		cfg.SSL.Mode = "disable"
	}
	return cfg, nil
}
