package store

// Admin is the handle for the writes only the database's owner may make: provisioning and deleting
// tenants, creating, importing and revoking API keys, and setting a tenant's LLM price overrides.
// A tenant's role may read api_keys and its tenant row but write neither, so none of this is on
// *Tenant; the operator and the tracekit CLI (dev mode, apikey) hold an Admin, tenant servers do not.
type Admin struct{ db *DB }

// Admin returns the owner's handle on db. Its writes fail in the database when db is connected as a
// tenant's role.
func (db *DB) Admin() *Admin { return &Admin{db: db} }
