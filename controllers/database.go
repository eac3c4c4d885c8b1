package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
	"github.com/tracekit/tracekit/server/genai"
	"github.com/tracekit/tracekit/server/store"
)

// Databases keeps one connection pool per admin URL, migrated when first opened. Tenants of the
// shared platform database all use the same pool.
type Databases struct {
	mu   sync.Mutex
	open map[string]*store.DB
}

// NewDatabases returns an empty set of pools.
func NewDatabases() *Databases { return &Databases{open: map[string]*store.DB{}} }

// get returns the pool for adminURL, connecting and migrating on first use. A failed connection is
// not kept, so the next reconcile tries again.
func (d *Databases) get(ctx context.Context, adminURL string) (*store.DB, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if db, ok := d.open[adminURL]; ok {
		return db, nil
	}
	db, err := store.Open(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	d.open[adminURL] = db
	return db, nil
}

// Close closes every pool.
func (d *Databases) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, db := range d.open {
		db.Close()
		delete(d.open, k)
	}
}

// dbTimeout bounds each round of database work, so an unreachable host fails the step instead of
// holding a worker.
const dbTimeout = 15 * time.Second

// provisionedAnnotation on the tenant's database Secret is the hash of every input of the last
// successful provisioning; while it matches, the operator only checks that the database answers.
const provisionedAnnotation = "tracekit.dev/provisioned"

// dbResult is what later steps need from the database step.
type dbResult struct {
	// secret is the data of the tenant's database Secret; nil until the tenant is provisioned.
	secret map[string][]byte
	// port is the database's TCP port, for the NetworkPolicy; 0 when the admin URL is unknown.
	port int32
}

// reconcileDatabase makes the tenant row and the tenant's login role exist in the database, sets the
// tenant's LLM prices, imports its bootstrap API keys, and keeps the role's URL in a Secret.
func (r *TenantReconciler) reconcileDatabase(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, st *status) (dbResult, error) {
	in, ok, err := r.databaseInputs(ctx, t, st)
	res := dbResult{port: in.port} // known once the admin URL is, for the NetworkPolicy
	if !ok || err != nil {
		return res, err
	}
	ref, adminURL, prices, keys := t.Spec.Database.AdminSecretRef, in.adminURL, in.prices, in.keys

	current := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: dbSecretName(t)}, current); err != nil && !apierrors.IsNotFound(err) {
		return res, err
	}
	creds := store.TenantCredentials{Role: string(current.Data["role"]), Password: string(current.Data["password"])}
	hash := provisionHash(adminURL, t.Spec.DisplayName, prices, accessRules(t), keys, apiKeyScopes(t), creds)

	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	unreachable := func(err error) (dbResult, error) {
		st.set(tracekitv1alpha1.ConditionDatabaseReady, false, "DatabaseUnreachable",
			"cannot reach the database of Secret %s: %v; check that it is up and reachable from the operator (retrying with backoff)", ref.Name, err)
		return res, fmt.Errorf("tenant %s/%s: database: %w", t.Namespace, t.Name, err)
	}
	db, err := r.Databases.get(ctx, adminURL)
	if err != nil {
		return unreachable(err)
	}
	provisioned := current.Annotations[provisionedAnnotation] == hash && creds.Role != ""
	if provisioned {
		if err := db.Ping(ctx); err != nil {
			return unreachable(err)
		}
	} else {
		if creds, err = provision(ctx, db, t, creds.Password, prices, keys); err != nil {
			if db.Ping(ctx) != nil {
				return unreachable(err)
			}
			st.set(tracekitv1alpha1.ConditionDatabaseReady, false, "ProvisioningFailed",
				"provisioning tenant %q failed: %v (retrying with backoff)", t.Name, err)
			return res, fmt.Errorf("tenant %s/%s: %w", t.Namespace, t.Name, err)
		}
		hash = provisionHash(adminURL, t.Spec.DisplayName, prices, accessRules(t), keys, apiKeyScopes(t), creds)
	}
	tenantURL, err := creds.DSN(adminURL)
	if err != nil {
		return res, err
	}
	secret := desiredDBSecret(t, creds, tenantURL, hash)
	if err := apply(ctx, r, st, &corev1.Secret{}, secret, corev1ac.ExtractSecret); err != nil {
		return res, err
	}
	if !provisioned {
		r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, "Provisioned", "Provision",
			"Provisioned tenant %q, its database role %s, LLM prices and %d bootstrap API key(s)", t.Name, creds.Role, len(keys))
	}
	res.secret = secret.Data
	st.set(tracekitv1alpha1.ConditionDatabaseReady, true, "Provisioned",
		"tenant %q and its database role %s are provisioned; the server connects as that role (Secret %s)", t.Name, creds.Role, dbSecretName(t))
	return res, nil
}

// dbInputs are what provisioning reads from the resource and the Secrets it names.
type dbInputs struct {
	adminURL string
	port     int32
	keys     map[string]string // bootstrap API keys by name
	prices   []byte            // LLM price overrides as the store takes them
}

// databaseInputs reads the admin URL, bootstrap keys and price overrides. When one is missing or
// invalid it sets DatabaseReady false saying what to fix, and ok is false.
func (r *TenantReconciler) databaseInputs(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, st *status) (in dbInputs, ok bool, err error) {
	ref := t.Spec.Database.AdminSecretRef
	adminURL, reason, err := r.secretValue(ctx, t.Namespace, ref.Name, secretKey(ref.Key))
	if err != nil {
		return in, false, err
	}
	if reason != "" {
		st.set(tracekitv1alpha1.ConditionDatabaseReady, false, reason,
			"spec.database.adminSecretRef: Secret %s in namespace %s needs key %q with the database's admin postgres:// URL",
			ref.Name, t.Namespace, secretKey(ref.Key))
		return in, false, nil
	}
	in.adminURL = adminURL
	if in.port, err = postgresPort(adminURL); err != nil {
		st.set(tracekitv1alpha1.ConditionDatabaseReady, false, "AdminURLInvalid",
			"key %q of Secret %s is not a postgres:// URL (%v): store the admin URL as postgres://user:password@host:5432/database",
			secretKey(ref.Key), ref.Name, err)
		return in, false, nil
	}
	if in.keys, err = r.bootstrapKeys(ctx, t); err != nil {
		return in, false, err
	}
	if t.Spec.APIKeys != nil && in.keys == nil {
		st.set(tracekitv1alpha1.ConditionDatabaseReady, false, "APIKeysSecretNotFound",
			"spec.apiKeys.secretName: Secret %s not found in namespace %s; create it (one API key per data key) or remove spec.apiKeys",
			t.Spec.APIKeys.SecretName, t.Namespace)
		return in, false, nil
	}
	if in.prices, err = priceOverrides(t.Spec.LLMPriceOverrides); err != nil {
		st.set(tracekitv1alpha1.ConditionDatabaseReady, false, "PriceOverridesInvalid", "spec.llmPriceOverrides: %v", err)
		return in, false, nil
	}
	return in, true, nil
}

// provision is the database work: tenant row and role (keeping the password when there is one),
// LLM prices, company sign-in rules, API keys. Every call is idempotent.
func provision(ctx context.Context, db *store.DB, t *tracekitv1alpha1.TraceKitTenant, password string, prices []byte, keys map[string]string) (store.TenantCredentials, error) {
	creds, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: t.Name, DisplayName: t.Spec.DisplayName, Password: password})
	if err != nil {
		return creds, err
	}
	if err := db.Admin().SetPriceOverrides(ctx, t.Name, prices); err != nil {
		return creds, fmt.Errorf("set LLM price overrides of tenant %q: %w", t.Name, err)
	}
	if err := db.Admin().SetAccess(ctx, t.Name, accessRules(t)); err != nil {
		return creds, fmt.Errorf("set the access rules (spec.access) of tenant %q: %w", t.Name, err)
	}
	names := make([]string, 0, len(keys))
	for name := range keys {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, err := db.Admin().ImportAPIKey(ctx, t.Name, name, keys[name], apiKeyScopes(t)); err != nil {
			return creds, fmt.Errorf("spec.apiKeys: key %q of Secret %s: %w", name, t.Spec.APIKeys.SecretName, err)
		}
	}
	return creds, nil
}

// desiredDBSecret holds the URL the tenant's server connects with, plus the role and password so
// that provisioning again keeps them.
func desiredDBSecret(t *tracekitv1alpha1.TraceKitTenant, creds store.TenantCredentials, tenantURL, hash string) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(dbSecretName(t), t.Namespace).
		WithLabels(objectLabels(t)).
		WithAnnotations(map[string]string{provisionedAnnotation: hash}).
		WithOwnerReferences(ownerRef(t)).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{
			"url":      []byte(tenantURL),
			"role":     []byte(creds.Role),
			"password": []byte(creds.Password),
		})
}

// secretValue reads one key of a user's Secret (past the cache, which holds only the operator's). A
// missing Secret or key is the user's to fix: it comes back as a condition reason, not an error, and
// the watch on Secrets retries when it appears.
func (r *TenantReconciler) secretValue(ctx context.Context, namespace, name, key string) (value, reason string, err error) {
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", "AdminSecretNotFound", nil
		}
		return "", "", err
	}
	v, ok := s.Data[key]
	if !ok || len(v) == 0 {
		return "", "AdminSecretKeyMissing", nil
	}
	return string(v), "", nil
}

func secretKey(k string) string {
	if k == "" {
		return "url"
	}
	return k
}

// bootstrapKeys reads the API keys to import: name → key. It returns nil when the tenant names a
// Secret that does not exist.
func (r *TenantReconciler) bootstrapKeys(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant) (map[string]string, error) {
	if t.Spec.APIKeys == nil {
		return map[string]string{}, nil
	}
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Spec.APIKeys.SecretName}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	keys := make(map[string]string, len(s.Data))
	for name, v := range s.Data {
		keys[name] = string(v)
	}
	return keys, nil
}

func apiKeyScopes(t *tracekitv1alpha1.TraceKitTenant) []string {
	if t.Spec.APIKeys == nil || len(t.Spec.APIKeys.Scopes) == 0 {
		return store.DefaultScopes
	}
	return t.Spec.APIKeys.Scopes
}

// priceOverrides turns the spec's prices into the JSON the ingest reads (model → USD per million).
func priceOverrides(in map[string]tracekitv1alpha1.LLMPrice) ([]byte, error) {
	out := make(map[string]genai.Price, len(in))
	for model, p := range in {
		var gp genai.Price
		var err error
		if gp.Input, err = strconv.ParseFloat(p.Input, 64); err != nil {
			return nil, fmt.Errorf("%s.input %q is not a decimal number", model, p.Input)
		}
		if gp.Output, err = strconv.ParseFloat(p.Output, 64); err != nil {
			return nil, fmt.Errorf("%s.output %q is not a decimal number", model, p.Output)
		}
		gp.CachedInput = gp.Input
		if p.CachedInput != "" {
			if gp.CachedInput, err = strconv.ParseFloat(p.CachedInput, 64); err != nil {
				return nil, fmt.Errorf("%s.cachedInput %q is not a decimal number", model, p.CachedInput)
			}
		}
		out[model] = gp
	}
	return json.Marshal(out) // map keys marshal sorted, so equal prices give equal bytes
}

// accessRules is spec.access as the database keeps it for `tracekit auth` (the JSON of auth.Access,
// whose field names the CRD shares).
func accessRules(t *tracekitv1alpha1.TraceKitTenant) []byte {
	if len(t.Spec.Access) == 0 {
		return []byte("[]")
	}
	b, _ := json.Marshal(t.Spec.Access) // strings only: cannot fail
	return b
}

// provisionHash covers every input of provisioning, so a change to any of them provisions again.
func provisionHash(adminURL, displayName string, prices, access []byte, keys map[string]string, scopes []string, creds store.TenantCredentials) string {
	h := sha256.New()
	for _, s := range []string{adminURL, displayName, string(prices), string(access), creds.Role, creds.Password} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(h, "key %d:%s=%d:%s;", len(n), n, len(keys[n]), keys[n])
	}
	for _, s := range scopes {
		fmt.Fprintf(h, "scope %d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// postgresPort is the TCP port of a postgres:// URL.
func postgresPort(raw string) (int32, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return 0, fmt.Errorf("unparsable URL")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return 0, fmt.Errorf("scheme %q", u.Scheme)
	}
	if u.Port() == "" {
		return 5432, nil
	}
	p, err := strconv.ParseInt(u.Port(), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("port %q", u.Port())
	}
	return int32(p), nil
}
