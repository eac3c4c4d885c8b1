// Package store is the only place that speaks SQL. Tenant data is reached through a *Tenant handle
// (DB.ForTenant), so every query is scoped by construction; on PostgreSQL, row-level security and a
// per-tenant role make the database enforce the same boundary.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Dialect names the SQL engine behind a DB.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

//go:embed migrations
var migrations embed.FS

// DB is a connection pool plus the dialect it speaks.
type DB struct {
	x       *sqlx.DB
	dialect Dialect
	// SQLite allows one writer; serialising writes here avoids SQLITE_BUSY under concurrent ingest.
	writeMu sync.Mutex
	// serviceSeen remembers the time range already written to the services table per tenant and
	// service, so ingest updates a service row about once per minute of data, not once per batch.
	serviceSeen sync.Map // tenant\x00service (\x00\x00version) -> [2]int64{first, last}

	rlsMu    sync.Mutex
	rlsKnown bool
	rls      bool // connected as a tenant role, subject to row-level security

	logger         atomic.Pointer[slog.Logger] // nil: slog.Default()
	servicesFailed atomic.Int64                // services-table updates dropped after a committed batch
}

// SetLogger sets where the store reports what it recovers from without failing a call.
func (db *DB) SetLogger(l *slog.Logger) { db.logger.Store(l) }

func (db *DB) log() *slog.Logger {
	if l := db.logger.Load(); l != nil {
		return l
	}
	return slog.Default()
}

// ServicesUpdateFailures counts the batches whose spans were stored but whose update of the
// services tables failed (the next batch of those services repairs it).
func (db *DB) ServicesUpdateFailures() int64 { return db.servicesFailed.Load() }

// underRLS reports whether this PostgreSQL connection is a tenant's role, which PostgreSQL subjects
// to row-level security (and then refuses COPY FROM). Only a definite answer is remembered.
func (db *DB) underRLS(ctx context.Context) (bool, error) {
	db.rlsMu.Lock()
	defer db.rlsMu.Unlock()
	if db.rlsKnown {
		return db.rls, nil
	}
	_, err := db.CurrentTenant(ctx)
	switch {
	case err == nil:
		db.rls = true
	case errors.Is(err, ErrNotFound):
		db.rls = false
	default:
		return false, err
	}
	db.rlsKnown = true
	return db.rls, nil
}

// ErrBadURL is a database URL that names no database Open can use; retrying cannot help.
var ErrBadURL = errors.New("database URL")

// Open connects to dsn: a postgres:// or postgresql:// URL, or sqlite:<path> (a bare path ending in
// .db is taken as SQLite too).
func Open(ctx context.Context, dsn string) (*DB, error) {
	var (
		driver  string
		source  string
		dialect Dialect
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		driver, source, dialect = "pgx", dsn, Postgres
	case strings.HasPrefix(dsn, "sqlite:"), strings.HasSuffix(dsn, ".db"):
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
		driver, source, dialect = "sqlite", sqliteSource(path), SQLite
	default:
		return nil, fmt.Errorf("%w %q: want a postgres://user@host/db URL or sqlite:<path>", ErrBadURL, redactDSN(dsn))
	}
	var x *sqlx.DB
	if dialect == Postgres {
		cfg, err := pgx.ParseConfig(source)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %v", ErrBadURL, redactDSN(dsn), err)
		}
		// Every connection sends the arrays of bulk inserts as encoded (table.arrays).
		x = sqlx.NewDb(stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(registerArrays)), driver)
	} else {
		var err error
		if x, err = sqlx.Open(driver, source); err != nil {
			return nil, fmt.Errorf("open %s database: %w", dialect, err)
		}
	}
	if dialect == SQLite {
		x.SetMaxOpenConns(4)
	} else {
		x.SetMaxOpenConns(32)
		x.SetMaxIdleConns(32)
	}
	if err := x.PingContext(ctx); err != nil {
		x.Close()
		return nil, fmt.Errorf("connect to %s database %s: %w", dialect, redactDSN(dsn), err)
	}
	return &DB{x: x, dialect: dialect}, nil
}

func sqliteSource(path string) string {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)", "foreign_keys(ON)"} {
		q.Add("_pragma", p)
	}
	// Transactions take the write lock when they begin: a deferred one that reads, then writes, can fail
	// with SQLITE_BUSY at once (without waiting) when another connection writes meanwhile.
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// redactDSN hides a password so connection strings can appear in errors and logs.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Dialect reports the SQL engine in use.
func (db *DB) Dialect() Dialect { return db.dialect }

// Close releases the pool.
func (db *DB) Close() error { return db.x.Close() }

// Ping checks that the database answers; readiness probes use it.
func (db *DB) Ping(ctx context.Context) error { return db.x.PingContext(ctx) }

// Migrate brings the schema up to date with the migrations embedded for this dialect.
func (db *DB) Migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations/"+string(db.dialect))
	if err != nil {
		return err
	}
	gd := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if db.dialect == Postgres {
		gd = goose.DialectPostgres
		// Several processes (auth server replicas, the operator) may migrate one database at once;
		// an advisory lock makes them take turns instead of failing on each other's DDL.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, db.x.DB, sub, opts...)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s schema: %w", db.dialect, err)
	}
	return nil
}

// write runs fn in a transaction, serialised for SQLite.
func (db *DB) write(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	if db.dialect == SQLite {
		db.writeMu.Lock()
		defer db.writeMu.Unlock()
	}
	tx, err := db.x.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

// ErrNotFound is returned when a looked-up row does not exist (or belongs to another tenant).
var ErrNotFound = errors.New("not found")

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// Tenant is a handle on one tenant's rows. Every method scopes its SQL by the handle's tenant id.
type Tenant struct {
	db *DB
	id string
}

// ForTenant returns the handle through which all of tenant id's data is read and written.
func (db *DB) ForTenant(id string) *Tenant { return &Tenant{db: db, id: id} }

// ID is the tenant's identifier.
func (t *Tenant) ID() string { return t.id }

// Dialect reports the SQL engine behind the handle.
func (t *Tenant) Dialect() Dialect { return t.db.dialect }

func (t *Tenant) rebind(q string) string { return t.db.x.Rebind(q) }
