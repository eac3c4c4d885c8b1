package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// fieldOwner is the server-side apply field manager of everything the operator writes.
const fieldOwner = "tracekit-operator"

// applyConfig is a typed apply configuration (client-go's applyconfigurations packages).
type applyConfig interface {
	runtime.ApplyConfiguration
	GetKind() *string
	GetName() *string
	GetNamespace() *string
}

// apply makes the fields the operator owns on an object equal desired, by server-side apply with
// force (the operator's fields win over anyone who edited them). It first compares desired with what
// the operator last applied, as recorded in the live object's managed fields, and writes nothing when
// they match, so a resync with nothing changed makes no request. live is an empty object of the same
// kind to read into; extract is client-go's Extract<Kind>. A write is recorded in st, which reports
// it in one event per reconcile.
func apply[O client.Object, A applyConfig](ctx context.Context, r *TenantReconciler, st *status,
	live O, desired A, extract func(O, string) (A, error)) error {
	kind, name := *desired.GetKind(), *desired.GetName()
	err := r.Get(ctx, types.NamespacedName{Namespace: *desired.GetNamespace(), Name: name}, live)
	exists := err == nil
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("read %s %s: %w", kind, name, err)
	default:
		current, err := extract(live, fieldOwner)
		if err != nil {
			return fmt.Errorf("read the fields of %s %s owned by %s: %w", kind, name, fieldOwner, err)
		}
		if equality.Semantic.DeepEqual(current, desired) {
			return nil
		}
	}
	if err := r.Apply(ctx, desired, client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %s %s: %w", kind, name, err)
	}
	action := "Created"
	if exists {
		action = "Updated"
	}
	st.changed(action, kind, name)
	return nil
}

// remove deletes an owned object the spec no longer asks for; a missing object is not an error.
func remove(ctx context.Context, r *TenantReconciler, st *status, obj client.Object, kind string) error {
	if err := r.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, st.t) {
		return nil
	}
	if err := r.Delete(ctx, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	st.changed("Deleted", kind, obj.GetName())
	return nil
}

// announce reports a reconcile's writes to owned objects: one event and one log line per action,
// not one per object, which halves what a new tenant costs the API server.
func (r *TenantReconciler) announce(ctx context.Context, st *status) {
	for _, action := range []string{"Created", "Updated", "Deleted"} {
		objs := st.changes[action]
		if len(objs) == 0 {
			continue
		}
		r.Recorder.Eventf(st.t, nil, corev1.EventTypeNormal, action, action, "%s %s", action, strings.Join(objs, ", "))
		log.FromContext(ctx).Info(strings.ToLower(action), "objects", objs)
	}
}

// ownerRef makes t the controller of an object, so deleting t deletes it and the watch on the
// object's kind finds t again.
func ownerRef(t *tracekitv1alpha1.TraceKitTenant) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(tracekitv1alpha1.GroupVersion.String()).
		WithKind("TraceKitTenant").
		WithName(t.Name).
		WithUID(t.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}
