package controllers

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// databaseAnnotation on a tenant names the TraceKitDatabase it is placed on. It is written once,
// before anything is provisioned there, and is what placement trusts: status.database mirrors it for
// people (and restores it should the annotation be stripped).
const databaseAnnotation = "tracekit.dev/database"

// unplaced is the database index value of tenants waiting to be placed (no placement, no
// adminSecretRef): placement names are DNS names, never "-".
const unplaced = "-"

// placedOn is the TraceKitDatabase the tenant is on, "" when none yet.
func placedOn(t *tracekitv1alpha1.TraceKitTenant) string {
	if a := t.Annotations[databaseAnnotation]; a != "" {
		return a
	}
	return t.Status.Database
}

// databaseIndexValue is what the tenant index by database holds for t: its database, unplaced, or
// nothing for a tenant on its own adminSecretRef that was never placed.
func databaseIndexValue(t *tracekitv1alpha1.TraceKitTenant) []string {
	if db := placedOn(t); db != "" {
		return []string{db}
	}
	if t.Spec.Database.AdminSecretRef == nil {
		return []string{unplaced}
	}
	return nil
}

// adminSource is where a tenant's admin URL comes from, for the messages that ask to fix it.
type adminSource struct {
	namespace, name, key string
	// field is what the user edits to fix it: the tenant's spec.database.adminSecretRef or a
	// TraceKitDatabase's spec.adminSecretRef.
	field string
}

// tenantAdminSource finds the Secret with the admin URL of the tenant's database: its own
// adminSecretRef, or that of the TraceKitDatabase it is placed on, placing it first when it is new.
// When the tenant cannot be placed it sets DatabaseReady false saying why, and ok is false.
func (r *TenantReconciler) tenantAdminSource(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, st *status) (src adminSource, ok bool, err error) {
	placed := placedOn(t)
	if a, s := t.Annotations[databaseAnnotation], t.Status.Database; a != "" && s != "" && a != s {
		st.set(tracekitv1alpha1.ConditionDatabaseReady, false, "DatabaseMoveRefused",
			"annotation %s says TraceKitDatabase %s but the tenant was placed on %s; a tenant never moves (its data would stay behind): set the annotation back to %s",
			databaseAnnotation, a, s, s)
		return src, false, nil
	}
	if ref := t.Spec.Database.AdminSecretRef; ref != nil {
		if placed != "" {
			st.set(tracekitv1alpha1.ConditionDatabaseReady, false, "DatabaseMoveRefused",
				"the tenant is placed on TraceKitDatabase %s; spec.database.adminSecretRef would move it and leave its data behind: remove adminSecretRef, or delete the tenant and create it again",
				placed)
			return src, false, nil
		}
		return adminSource{namespace: t.Namespace, name: ref.Name, key: secretKey(ref.Key), field: "spec.database.adminSecretRef"}, true, nil
	}
	if pin := t.Spec.Database.Name; placed != "" && pin != "" && pin != placed {
		st.set(tracekitv1alpha1.ConditionDatabaseReady, false, "DatabaseMoveRefused",
			"the tenant is placed on TraceKitDatabase %s; moving it to %s would leave its data behind: set spec.database.name back to %s (or remove it), or delete the tenant and create it again on %s",
			placed, pin, placed, pin)
		return src, false, nil
	}
	if placed == "" {
		if placed, err = r.place(ctx, t, st); err != nil || placed == "" {
			return src, false, err
		}
	}
	db := &tracekitv1alpha1.TraceKitDatabase{}
	if err := r.Get(ctx, types.NamespacedName{Name: placed}, db); err != nil {
		if !apierrors.IsNotFound(err) {
			return src, false, err
		}
		st.set(tracekitv1alpha1.ConditionDatabaseReady, false, "DatabaseNotFound",
			"the tenant is placed on TraceKitDatabase %s, which does not exist: create it again with the same admin Secret (kubectl get tkdb)", placed)
		return src, false, nil
	}
	if err := r.recordPlacement(ctx, t, placed); err != nil {
		return src, false, err
	}
	ref := db.Spec.AdminSecretRef
	return adminSource{namespace: ref.Namespace, name: ref.Name, key: secretKey(ref.Key),
		field: "spec.adminSecretRef of TraceKitDatabase " + db.Name}, true, nil
}

// recordPlacement writes the annotation (when missing) and status.database.
func (r *TenantReconciler) recordPlacement(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, db string) error {
	t.Status.Database = db
	if t.Annotations[databaseAnnotation] == db {
		return nil
	}
	patch := client.MergeFrom(t.DeepCopy())
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	t.Annotations[databaseAnnotation] = db
	return r.Patch(ctx, t, patch)
}

// place picks the database of a tenant not placed yet and records it. Placements happen one at a
// time, from the API server rather than the cache, so that concurrent reconciles neither overfill a
// database nor place a tenant on one whose deletion has just let go (see DatabaseReconciler).
func (r *TenantReconciler) place(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, st *status) (string, error) {
	r.Databases.placing.Lock()
	defer r.Databases.placing.Unlock()
	var dbs tracekitv1alpha1.TraceKitDatabaseList
	if err := r.APIReader.List(ctx, &dbs); err != nil {
		return "", err
	}
	counts, err := tenantCounts(ctx, r.APIReader)
	if err != nil {
		return "", err
	}
	// A tenant provisioned before, through an adminSecretRef it no longer has, is adopted only by a
	// database on the same server: anywhere else its data would stay behind.
	existing, err := r.provisionedServer(ctx, t)
	if err != nil {
		return "", err
	}
	var why []string
	var candidates []*tracekitv1alpha1.TraceKitDatabase
	for i := range dbs.Items {
		db := &dbs.Items[i]
		if pin := t.Spec.Database.Name; pin != "" && db.Name != pin {
			continue
		}
		reason, err := r.unplaceable(ctx, t, db, counts[db.Name], existing)
		if err != nil {
			return "", err
		}
		if reason != "" {
			why = append(why, db.Name+" "+reason)
			continue
		}
		candidates = append(candidates, db)
	}
	if len(candidates) == 0 {
		switch {
		case t.Spec.Database.Name != "" && len(why) == 0:
			st.set(tracekitv1alpha1.ConditionDatabaseReady, false, "DatabaseNotFound",
				"spec.database.name: there is no TraceKitDatabase %s; create it (kubectl get tkdb lists them) or name another", t.Spec.Database.Name)
		case len(dbs.Items) == 0:
			st.set(tracekitv1alpha1.ConditionDatabaseReady, false, "NoDatabaseAvailable",
				"there is no TraceKitDatabase to place the tenant on: declare one (see docs/operator.md, Many databases) or set spec.database.adminSecretRef")
		default:
			st.set(tracekitv1alpha1.ConditionDatabaseReady, false, "NoDatabaseAvailable",
				"no TraceKitDatabase can take the tenant: %s; fix one, raise a maxTenants or declare another database (the tenant is placed as soon as one can take it)",
				strings.Join(why, "; "))
		}
		return "", nil
	}
	best := slices.MinFunc(candidates, func(a, b *tracekitv1alpha1.TraceKitDatabase) int {
		return cmp.Or(cmp.Compare(counts[a.Name], counts[b.Name]), cmp.Compare(a.Name, b.Name))
	})
	if err := r.recordPlacement(ctx, t, best.Name); err != nil {
		return "", err
	}
	r.Recorder.Eventf(t, best, corev1.EventTypeNormal, "Placed", "Place",
		"Placed tenant %q on TraceKitDatabase %s, which held %d tenant(s)", t.Name, best.Name, counts[best.Name])
	return best.Name, nil
}

// unplaceable says why db cannot take the tenant, or "" when it can. A tenant that pins db takes it
// beyond maxTenants and before it is Ready: the pin is the platform's explicit choice.
func (r *TenantReconciler) unplaceable(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, db *tracekitv1alpha1.TraceKitDatabase, count int32, existing string) (string, error) {
	if !db.DeletionTimestamp.IsZero() {
		return "is being deleted", nil
	}
	if existing != "" {
		ref := db.Spec.AdminSecretRef
		adminURL, reason, err := r.secretValue(ctx, ref.Namespace, ref.Name, secretKey(ref.Key))
		if err != nil {
			return "", err
		}
		if reason != "" || serverOf(adminURL) != existing {
			return fmt.Sprintf("is not the server the tenant's data is on (%s)", existing), nil
		}
		return "", nil
	}
	if t.Spec.Database.Name != "" {
		return "", nil
	}
	if !meta.IsStatusConditionTrue(db.Status.Conditions, tracekitv1alpha1.ConditionReady) {
		return "is not Ready", nil
	}
	if m := db.Spec.MaxTenants; m != nil && count >= *m {
		return fmt.Sprintf("is full (%d of maxTenants %d)", count, *m), nil
	}
	return "", nil
}

// provisionedServer is the server (host:port/database) of the tenant's database Secret when the
// tenant was provisioned before being placed, else "".
func (r *TenantReconciler) provisionedServer(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant) (string, error) {
	s := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: dbSecretName(t)}, s); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if len(s.Data["url"]) == 0 {
		return "", nil
	}
	return serverOf(string(s.Data["url"])), nil
}

// serverOf is the host, port and database of a postgres:// URL, whoever logs in.
func serverOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return u.Hostname() + ":" + port + u.Path
}

// tenantCounts is the number of tenants placed on each database, read from the API server.
func tenantCounts(ctx context.Context, c client.Reader) (map[string]int32, error) {
	var tenants tracekitv1alpha1.TraceKitTenantList
	if err := c.List(ctx, &tenants); err != nil {
		return nil, err
	}
	counts := map[string]int32{}
	for i := range tenants.Items {
		if db := placedOn(&tenants.Items[i]); db != "" {
			counts[db]++
		}
	}
	return counts, nil
}
