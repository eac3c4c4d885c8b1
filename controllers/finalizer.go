package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// finalize removes what the tenant has outside the cluster, its Dex client and its database rows and
// role, then lets Kubernetes delete the tenant (and, through owner references, its objects). Until
// both are gone the finalizer stays and the attempt is retried with backoff.
func (r *TenantReconciler) finalize(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant) error {
	if !controllerutil.ContainsFinalizer(t, finalizer) {
		return nil
	}
	holder, err := r.idHolder(ctx, t)
	if err != nil {
		return err
	}
	// A namesake that holds the tenant id owns the external records: leave them alone.
	if holder == nil {
		if err := r.deleteExternal(ctx, t); err != nil {
			r.Recorder.Eventf(t, nil, corev1.EventTypeWarning, "CleanupFailed", "Delete", "%v", err)
			return err
		}
		r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, "CleanedUp", "Delete",
			"Deleted OAuth client %s and the database rows and role of tenant %q", oauthClientID(t), t.Name)
	}
	patch := client.MergeFrom(t.DeepCopy())
	controllerutil.RemoveFinalizer(t, finalizer)
	return client.IgnoreNotFound(r.Patch(ctx, t, patch))
}

func (r *TenantReconciler) deleteExternal(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant) error {
	octx, cancel := context.WithTimeout(ctx, oauthTimeout)
	defer cancel()
	if err := r.OAuth.Delete(octx, oauthClientID(t)); err != nil {
		return fmt.Errorf("cannot delete OAuth client %s from Dex: %w (retrying; the tenant is deleted once it is gone)", oauthClientID(t), err)
	}
	src, ok, err := r.deletionAdminSource(ctx, t)
	if err != nil || !ok {
		return err
	}
	adminURL, reason, err := r.secretValue(ctx, src.namespace, src.name, src.key)
	if err != nil {
		return err
	}
	if reason != "" {
		return fmt.Errorf("cannot delete tenant %q from the database: Secret %s/%s with key %q (%s) is gone; recreate it, or remove the finalizer %s to leave the tenant's rows and role behind",
			t.Name, src.namespace, src.name, src.key, src.field, finalizer)
	}
	dctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	db, err := r.Databases.get(dctx, adminURL)
	if err != nil {
		return fmt.Errorf("cannot delete tenant %q from the database: %w (retrying)", t.Name, err)
	}
	return db.Admin().DeleteTenant(dctx, t.Name)
}

// deletionAdminSource finds the admin Secret of the database the tenant's rows are on; ok is false
// when there is none because the tenant was never placed.
func (r *TenantReconciler) deletionAdminSource(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant) (adminSource, bool, error) {
	placed := placedOn(t)
	if ref := t.Spec.Database.AdminSecretRef; ref != nil && placed == "" {
		return adminSource{namespace: t.Namespace, name: ref.Name, key: secretKey(ref.Key), field: "spec.database.adminSecretRef"}, true, nil
	}
	if placed == "" {
		return adminSource{}, false, nil
	}
	db := &tracekitv1alpha1.TraceKitDatabase{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: placed}, db); err != nil {
		if apierrors.IsNotFound(err) {
			return adminSource{}, false, fmt.Errorf("cannot delete tenant %q from the database: its TraceKitDatabase %s is gone; create it again, or remove the finalizer %s to leave the tenant's rows and role behind",
				t.Name, placed, finalizer)
		}
		return adminSource{}, false, err
	}
	ref := db.Spec.AdminSecretRef
	return adminSource{namespace: ref.Namespace, name: ref.Name, key: secretKey(ref.Key), field: "spec.adminSecretRef of TraceKitDatabase " + db.Name}, true, nil
}
