package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"

	"github.com/jmoiron/sqlx"
)

// tenantIDPattern matches a Kubernetes object name, which is what tenant ids come from.
var tenantIDPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateTenantID says what is wrong with a tenant id, or returns nil.
func ValidateTenantID(id string) error {
	if !tenantIDPattern.MatchString(id) {
		return fmt.Errorf("tenant id %q: use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit", id)
	}
	return nil
}

// TenantSpec is what ProvisionTenant makes true.
type TenantSpec struct {
	ID          string
	DisplayName string
	// Password for the tenant's database role (PostgreSQL). Empty generates one; pass the previous
	// value on later calls so that provisioning is idempotent.
	Password string
}

// TenantCredentials is how a tenant's server connects to the database as the tenant's own role.
type TenantCredentials struct {
	Role     string
	Password string
}

// DSN returns adminDSN with the user and password replaced by the tenant role's.
func (c TenantCredentials) DSN(adminDSN string) (string, error) {
	return withUser(adminDSN, c.Role, c.Password)
}

// ProvisionTenant creates or updates the tenant row and, on PostgreSQL, the tenant's login role
// (member of tracekit_tenant, so row-level security confines it to its own rows). Idempotent.
func (a *Admin) ProvisionTenant(ctx context.Context, spec TenantSpec) (TenantCredentials, error) {
	db := a.db
	if err := ValidateTenantID(spec.ID); err != nil {
		return TenantCredentials{}, err
	}
	var creds TenantCredentials
	if db.dialect == Postgres {
		var dbName string
		if err := db.x.GetContext(ctx, &dbName, "SELECT current_database()"); err != nil {
			return creds, fmt.Errorf("provision tenant %q: %w", spec.ID, err)
		}
		creds.Role = roleName(dbName, spec.ID)
		creds.Password = spec.Password
		if creds.Password == "" {
			creds.Password = randomToken(24)
		}
	}
	err := db.write(ctx, func(tx *sqlx.Tx) error {
		var role any
		if creds.Role != "" {
			role = creds.Role
		}
		_, err := tx.ExecContext(ctx, db.x.Rebind(`INSERT INTO tenants (id, display_name, db_role, created_ns) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, db_role = excluded.db_role`),
			spec.ID, spec.DisplayName, role, time.Now().UnixNano())
		if err != nil || db.dialect != Postgres {
			return err
		}
		// Role DDL takes no bind parameters; the name is derived from a validated id and quoted anyway.
		var exists bool
		if err := tx.GetContext(ctx, &exists, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", creds.Role); err != nil {
			return err
		}
		verb := "CREATE"
		if exists {
			verb = "ALTER"
		}
		stmt := fmt.Sprintf("%s ROLE %s LOGIN INHERIT PASSWORD %s", verb, quoteIdent(creds.Role), quoteLiteral(creds.Password))
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, fmt.Sprintf("GRANT tracekit_tenant TO %s", quoteIdent(creds.Role)))
		return err
	})
	if err != nil {
		return TenantCredentials{}, fmt.Errorf("provision tenant %q: %w", spec.ID, err)
	}
	return creds, nil
}

// tenantTables lists every table holding tenant rows, children first.
var tenantTables = []string{"audit_events", "tenant_secrets", "snapshots", "breakpoints", "rca_reports", "anomalies", "alerts", "alert_rules",
	"llm_calls", "service_versions", "services", "span_attributes", "span_attribute_keys", "span_attribute_gaps", "spans", "span_resources",
	"api_keys"}

// DeleteTenant removes every row of the tenant and, on PostgreSQL, its role. Deleting a tenant that
// does not exist is not an error.
func (a *Admin) DeleteTenant(ctx context.Context, id string) error {
	db := a.db
	var role *string
	err := db.write(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &role, db.x.Rebind("SELECT db_role FROM tenants WHERE id = ?"), id); err != nil && notFound(err) != ErrNotFound {
			return err
		}
		if db.dialect == Postgres {
			// The tenant's partitions go whole; the DELETEs below find nothing left in them.
			if _, err := tx.ExecContext(ctx, "SELECT tracekit_drop_tenant_partitions($1)", id); err != nil {
				return fmt.Errorf("drop partitions: %w", err)
			}
		}
		for _, table := range append(tenantTables, "tenants") {
			if table == "span_resources" && db.dialect != Postgres {
				continue // SQLite keeps resource attributes on the spans
			}
			col := "tenant_id"
			if table == "tenants" {
				col = "id"
			}
			if _, err := tx.ExecContext(ctx, db.x.Rebind("DELETE FROM "+table+" WHERE "+col+" = ?"), id); err != nil {
				return fmt.Errorf("delete from %s: %w", table, err)
			}
		}
		if db.dialect == Postgres && role != nil && *role != "" {
			if _, err := tx.ExecContext(ctx, "DROP ROLE IF EXISTS "+quoteIdent(*role)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete tenant %q: %w", id, err)
	}
	db.forgetPartitions(id)
	return nil
}

// TenantInfo is a row of the tenants table.
type TenantInfo struct {
	ID          string  `db:"id"`
	DisplayName string  `db:"display_name"`
	DBRole      *string `db:"db_role"`
	CreatedNS   int64   `db:"created_ns"`
}

// ListTenants returns every tenant (to a tenant role: only itself).
func (db *DB) ListTenants(ctx context.Context) ([]TenantInfo, error) {
	var out []TenantInfo
	err := db.x.SelectContext(ctx, &out, "SELECT id, display_name, db_role, created_ns FROM tenants ORDER BY id")
	return out, err
}

// CurrentTenant is the tenant a PostgreSQL tenant role belongs to; servers connected as a tenant role
// use it to find their own id. It returns ErrNotFound for a non-tenant connection.
func (db *DB) CurrentTenant(ctx context.Context) (string, error) {
	if db.dialect != Postgres {
		return "", ErrNotFound
	}
	var id *string
	if err := db.x.GetContext(ctx, &id, "SELECT tracekit_current_tenant()"); err != nil {
		return "", err
	}
	if id == nil {
		return "", ErrNotFound
	}
	return *id, nil
}

// roleName is unique per database and tenant: tests and clusters share PostgreSQL's global role
// namespace between databases. PostgreSQL truncates names at 63 bytes.
func roleName(database, tenant string) string {
	sum := sha256.Sum256([]byte(database + "\x00" + tenant))
	name := "tk_" + hex.EncodeToString(sum[:4]) + "_" + tenant
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// PriceOverrides returns the tenant's LLM price overrides as JSON ({} when none).
func (t *Tenant) PriceOverrides(ctx context.Context) ([]byte, error) {
	var raw string
	err := t.db.x.GetContext(ctx, &raw, t.rebind("SELECT price_overrides FROM tenants WHERE id = ?"), t.id)
	if err != nil {
		if notFound(err) == ErrNotFound {
			return []byte("{}"), nil
		}
		return nil, err
	}
	return []byte(raw), nil
}

// SetPriceOverrides replaces the tenant's LLM price overrides (a JSON object model → prices).
func (a *Admin) SetPriceOverrides(ctx context.Context, tenant string, overrides []byte) error {
	db := a.db
	if len(overrides) == 0 {
		overrides = []byte("{}")
	}
	_, err := db.x.ExecContext(ctx, db.x.Rebind("UPDATE tenants SET price_overrides = ? WHERE id = ?"), string(overrides), tenant)
	return err
}

// TenantAccess returns the tenant's company sign-in rules as JSON ([] when none) and its display
// name. `tracekit auth` reads them for any tenant, as it reads API keys; ErrNotFound for an unknown
// tenant.
func (db *DB) TenantAccess(ctx context.Context, tenant string) (access []byte, displayName string, err error) {
	var row struct {
		Access      string `db:"access"`
		DisplayName string `db:"display_name"`
	}
	if err := db.x.GetContext(ctx, &row, db.x.Rebind("SELECT access, display_name FROM tenants WHERE id = ?"), tenant); err != nil {
		return nil, "", notFound(err)
	}
	return []byte(row.Access), row.DisplayName, nil
}

// SetAccess replaces the tenant's company sign-in rules (a JSON array, see auth.Access).
func (a *Admin) SetAccess(ctx context.Context, tenant string, access []byte) error {
	db := a.db
	if len(access) == 0 {
		access = []byte("[]")
	}
	res, err := db.x.ExecContext(ctx, db.x.Rebind("UPDATE tenants SET access = ? WHERE id = ?"), string(access), tenant)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("set access of tenant %q: %w", tenant, ErrNotFound)
	}
	return nil
}
