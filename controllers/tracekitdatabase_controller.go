package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// databaseFinalizer holds a TraceKitDatabase while tenants are placed on it: deleting it would
// strand their data and leave their finalizers nowhere to delete it from.
const databaseFinalizer = "tracekit.dev/placed-tenants"

// indexDatabase indexes TraceKitTenants by the database they are placed on (unplaced for those
// waiting to be placed).
const indexDatabase = "tracekit.dev/database"

// DatabaseReconciler reconciles TraceKitDatabases: it connects to and migrates each one, reports
// whether it is Ready and how many tenants it holds, and keeps it while it holds any.
type DatabaseReconciler struct {
	client.Client
	// APIReader reads the admin Secret, which the manager's cache does not hold, and the tenants when
	// deciding whether a database may go. Nil means the manager's.
	APIReader client.Reader
	// Databases is shared with the TenantReconciler: the same pools, and the same placement lock.
	Databases *Databases
	// Recheck is how often a database is checked again (also while its Secret is missing). Zero
	// means 5 minutes.
	Recheck time.Duration
}

// +kubebuilder:rbac:groups=tracekit.dev,resources=tracekitdatabases,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=tracekit.dev,resources=tracekitdatabases/status,verbs=get;patch
// +kubebuilder:rbac:groups=tracekit.dev,resources=tracekitdatabases/finalizers,verbs=update

// Reconcile checks one database and records what it found.
func (r *DatabaseReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	db := &tracekitv1alpha1.TraceKitDatabase{}
	if err := r.Get(ctx, req.NamespacedName, db); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := db.Status.DeepCopy()
	var tenants tracekitv1alpha1.TraceKitTenantList
	if err := r.List(ctx, &tenants, client.MatchingFields{indexDatabase: db.Name}); err != nil {
		return ctrl.Result{}, err
	}
	db.Status.Tenants = int32(len(tenants.Items))
	if !db.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, db, before)
	}
	if !controllerutil.ContainsFinalizer(db, databaseFinalizer) {
		patch := client.MergeFrom(db.DeepCopy())
		controllerutil.AddFinalizer(db, databaseFinalizer)
		if err := r.Patch(ctx, db, patch); err != nil {
			return ctrl.Result{}, err
		}
	}
	// An unreachable database is retried with backoff; any other state is looked at again after a
	// while (a missing Secret too: the manager does not watch Secrets it does not own).
	if err := errors.Join(r.check(ctx, db), r.patchStatus(ctx, db, before)); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.recheck()}, nil
}

// check sets Ready: the admin Secret is there, the database answers and its schema is migrated
// (connecting the first time migrates it).
func (r *DatabaseReconciler) check(ctx context.Context, db *tracekitv1alpha1.TraceKitDatabase) error {
	ref := db.Spec.AdminSecretRef
	notReady := func(reason, format string, args ...any) {
		setCondition(&db.Status.Conditions, db.Generation, tracekitv1alpha1.ConditionReady, false, reason, format, args...)
	}
	adminURL, reason, err := secretValue(ctx, r.APIReader, ref.Namespace, ref.Name, secretKey(ref.Key))
	if err != nil {
		return err
	}
	if reason != "" {
		notReady(reason, "spec.adminSecretRef: Secret %s in namespace %s needs key %q with the database's admin postgres:// URL; no tenant is placed here until then",
			ref.Name, ref.Namespace, secretKey(ref.Key))
		return nil
	}
	if _, err := postgresPort(adminURL); err != nil {
		notReady("AdminURLInvalid", "key %q of Secret %s/%s is not a postgres:// URL (%v): store the admin URL as postgres://user:password@host:5432/database",
			secretKey(ref.Key), ref.Namespace, ref.Name, err)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	pool, err := r.Databases.get(ctx, adminURL)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		notReady("DatabaseUnreachable", "cannot reach or migrate the database of Secret %s/%s: %v; check that it is up and reachable from the operator (retrying with backoff); no tenant is placed here until then",
			ref.Namespace, ref.Name, err)
		return fmt.Errorf("TraceKitDatabase %s: %w", db.Name, err)
	}
	setCondition(&db.Status.Conditions, db.Generation, tracekitv1alpha1.ConditionReady, true, "Migrated",
		"the database answers and its schema is migrated; new tenants can be placed here")
	return nil
}

// finalize lets a deleted database go once no tenant is placed on it. It holds the placement lock
// and reads the tenants from the API server, so that no tenant is placed on it meanwhile.
func (r *DatabaseReconciler) finalize(ctx context.Context, db *tracekitv1alpha1.TraceKitDatabase, before *tracekitv1alpha1.TraceKitDatabaseStatus) error {
	if !controllerutil.ContainsFinalizer(db, databaseFinalizer) {
		return nil
	}
	r.Databases.placing.Lock()
	defer r.Databases.placing.Unlock()
	var tenants tracekitv1alpha1.TraceKitTenantList
	if err := r.APIReader.List(ctx, &tenants); err != nil {
		return err
	}
	var held []string
	for _, t := range tenants.Items {
		if placedOn(&t) == db.Name {
			held = append(held, t.Namespace+"/"+t.Name)
		}
	}
	if len(held) > 0 {
		slices.Sort(held)
		db.Status.Tenants = int32(len(held))
		setCondition(&db.Status.Conditions, db.Generation, tracekitv1alpha1.ConditionReady, false, "DeletionBlocked",
			"%d tenant(s) are still placed on this database (%s): their data is here, so it is deleted only once they are; delete them first (kubectl delete tkt), or remove the finalizer %s to abandon their data",
			len(held), strings.Join(held, ", "), databaseFinalizer)
		return r.patchStatus(ctx, db, before)
	}
	patch := client.MergeFrom(db.DeepCopy())
	controllerutil.RemoveFinalizer(db, databaseFinalizer)
	return client.IgnoreNotFound(r.Patch(ctx, db, patch))
}

func (r *DatabaseReconciler) recheck() time.Duration {
	if r.Recheck > 0 {
		return r.Recheck
	}
	return 5 * time.Minute
}

func (r *DatabaseReconciler) patchStatus(ctx context.Context, db *tracekitv1alpha1.TraceKitDatabase, before *tracekitv1alpha1.TraceKitDatabaseStatus) error {
	db.Status.ObservedGeneration = db.Generation
	if equality.Semantic.DeepEqual(before, &db.Status) {
		return nil
	}
	orig := db.DeepCopy()
	orig.Status = *before
	return client.IgnoreNotFound(r.Status().Patch(ctx, db, client.MergeFrom(orig)))
}

// SetupWithManager registers the controller. It needs the tenant index by database, which
// TenantReconciler.SetupWithManager adds: set that one up first.
func (r *DatabaseReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&tracekitv1alpha1.TraceKitDatabase{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A tenant placed, moved in or deleted changes the count, and may let a deletion proceed.
		Watches(&tracekitv1alpha1.TraceKitTenant{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if db := placedOn(o.(*tracekitv1alpha1.TraceKitTenant)); db != "" {
				return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: db}}}
			}
			return nil
		}), builder.WithPredicates(placementChanged)).
		// Retries of an unreachable database back off no further than the recheck interval.
		WithOptions(controller.Options{RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, r.recheck())}).
		Complete(r)
}

// placementChanged passes the tenant events that change a database's count: creation and deletion
// of placed tenants, and placements.
var placementChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return placedOn(e.ObjectOld.(*tracekitv1alpha1.TraceKitTenant)) != placedOn(e.ObjectNew.(*tracekitv1alpha1.TraceKitTenant)) ||
			e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
	},
}

// databaseChanged passes the database events that can change where tenants go or whether their
// database is usable: creation, deletion, a new spec, Ready flipping, or the tenant count going down
// (room for a waiting tenant).
var databaseChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*tracekitv1alpha1.TraceKitDatabase), e.ObjectNew.(*tracekitv1alpha1.TraceKitDatabase)
		return o.Generation != n.Generation || o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero() ||
			meta.IsStatusConditionTrue(o.Status.Conditions, tracekitv1alpha1.ConditionReady) != meta.IsStatusConditionTrue(n.Status.Conditions, tracekitv1alpha1.ConditionReady) ||
			n.Status.Tenants < o.Status.Tenants
	},
}

// setCondition records a condition on conditions; meta.SetStatusCondition keeps lastTransitionTime
// unless the status flips.
func setCondition(conditions *[]metav1.Condition, generation int64, condition string, ok bool, reason, format string, args ...any) {
	st := metav1.ConditionFalse
	if ok {
		st = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conditions, metav1.Condition{
		Type:               condition,
		Status:             st,
		Reason:             reason,
		Message:            fmt.Sprintf(format, args...),
		ObservedGeneration: generation,
	})
}
