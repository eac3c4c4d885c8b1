// Package controllers reconciles TraceKitTenants into the objects and external records a team needs:
// a database role, an OAuth client in Dex, and the team's MCP server with its Service and Ingress or
// Gateway API HTTPRoute; and TraceKitDatabases, the PostgreSQL servers tenants are placed on.
package controllers

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// finalizer holds a tenant until its database role and Dex client are gone.
const finalizer = "tracekit.dev/external-records"

// Options are the operator-wide settings (flags of `tracekit manager`).
type Options struct {
	// ServerImage runs `tracekit server` when a tenant sets no image.
	ServerImage string
	// TenantURL is the template of tenant URLs, {tenant} standing for the name, e.g.
	// https://{tenant}.tracekit.example.com or https://tracekit.example.com/t/{tenant}.
	TenantURL string
	// AuthIssuer is Dex's issuer URL, given to tenant servers to verify tokens.
	AuthIssuer string
	// Recheck is how often a Ready tenant's database and Dex client are checked again (reads only),
	// so that an outage shows in its conditions. Zero means 5 minutes.
	Recheck time.Duration
	// MaxBackoff caps the retry delay after a failure. Zero means 5 minutes.
	MaxBackoff time.Duration
	// MaxConcurrentReconciles is the number of tenants reconciled at once. Zero means 16: a reconcile
	// mostly waits on round trips to the API server, PostgreSQL and Dex.
	MaxConcurrentReconciles int
	// Gateway is the Gateway that tenants' HTTPRoutes attach to when they name none and set no
	// Ingress field; nil gives such tenants an Ingress.
	Gateway *tracekitv1alpha1.GatewayRef
	// GatewayAPI says the cluster serves HTTPRoutes (GatewayAPIInstalled); without it the operator
	// neither watches nor makes them. It must match the CacheOptions the manager was created with.
	GatewayAPI bool
}

// TenantReconciler reconciles TraceKitTenants.
type TenantReconciler struct {
	client.Client
	// APIReader reads past the manager's cache, which holds only the operator's own objects (see
	// CacheOptions): the Secrets tenants reference, and objects in the way of a tenant's. Nil means
	// the manager's.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	OAuth     OAuthClients
	Databases *Databases
	Options   Options
}

// +kubebuilder:rbac:groups=tracekit.dev,resources=tracekittenants,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=tracekit.dev,resources=tracekittenants/status,verbs=get;patch
// +kubebuilder:rbac:groups=tracekit.dev,resources=tracekittenants/finalizers,verbs=update
// +kubebuilder:rbac:groups=tracekit.dev,resources=tracekitdatabases,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets;configmaps;serviceaccounts;services,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses;networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one tenant's objects and external records in line with its spec, one step per
// owned object, and records what it found in the status.
func (r *TenantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	t := &tracekitv1alpha1.TraceKitTenant{}
	if err := r.Get(ctx, req.NamespacedName, t); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !t.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, t)
	}
	before := t.Status.DeepCopy()
	st := newStatus(t)

	if holder, err := r.idHolder(ctx, t); err != nil {
		return ctrl.Result{}, err
	} else if holder != nil {
		st.blocked("TenantIDTaken", "the name %q is already the tenant id of TraceKitTenant %s/%s (tenant names are ids in the shared database and in Dex, so they are unique in the cluster): delete this one and create it under another name",
			t.Name, holder.Namespace, holder.Name)
		return ctrl.Result{}, r.patchStatus(ctx, t, before, st)
	}
	base, err := publicURL(t, r.Options.TenantURL)
	if err != nil {
		st.blocked("URLNotSet", "%v", err)
		return ctrl.Result{}, r.patchStatus(ctx, t, before, st)
	}
	if conflict, err := r.nameConflict(ctx, t); err != nil {
		return ctrl.Result{}, err
	} else if conflict != "" {
		// Once per conflict, not per resync: the Warning is for whoever created the tenant.
		if c := meta.FindStatusCondition(before.Conditions, tracekitv1alpha1.ConditionReady); c == nil || c.Reason != "NameConflict" || c.Message != conflict {
			r.Recorder.Eventf(t, nil, corev1.EventTypeWarning, "NameConflict", "Apply", "%s", conflict)
		}
		st.blocked("NameConflict", "%s", conflict)
		// Removing the object in the way may not reach the operator's watches (its cache holds only
		// its own objects), so look again after a while rather than never or in a hot loop.
		return ctrl.Result{RequeueAfter: r.recheck()}, r.patchStatus(ctx, t, before, st)
	}
	if !controllerutil.ContainsFinalizer(t, finalizer) {
		patch := client.MergeFrom(t.DeepCopy())
		controllerutil.AddFinalizer(t, finalizer)
		if err := r.Patch(ctx, t, patch); err != nil {
			return ctrl.Result{}, err
		}
	}
	st.t.Status.MCPURL = mcpURL(base)

	// Each step is idempotent and independent enough that a failing external system (database, Dex)
	// does not stop the others; transient failures are returned together and retried with backoff.
	var errs []error
	step := func(err error) { errs = append(errs, err) }
	step(r.reconcileServiceAccount(ctx, t, st))
	db, err := r.reconcileDatabase(ctx, t, st)
	step(err)
	oauth, err := r.reconcileOAuthClient(ctx, t, base, st)
	step(err)
	rules, err := r.reconcileAlertRules(ctx, t, st)
	step(err)
	step(r.reconcileDeployment(ctx, t, base, db, oauth, rules, st))
	step(r.reconcileService(ctx, t, st))
	step(r.reconcileRoute(ctx, t, base, st))
	step(r.reconcileNetworkPolicy(ctx, t, db, st))
	step(r.reconcilePodDisruptionBudget(ctx, t, st))
	r.announce(ctx, st)
	st.summarize()
	step(r.patchStatus(ctx, t, before, st))

	if err := errors.Join(errs...); err != nil {
		return ctrl.Result{}, err
	}
	if meta.IsStatusConditionTrue(t.Status.Conditions, tracekitv1alpha1.ConditionReady) {
		return ctrl.Result{RequeueAfter: r.recheck()}, nil
	}
	return ctrl.Result{}, nil
}

func (r *TenantReconciler) recheck() time.Duration {
	if r.Options.Recheck > 0 {
		return r.Options.Recheck
	}
	return 5 * time.Minute
}

// patchStatus writes the status only when it differs from what was read.
func (r *TenantReconciler) patchStatus(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, before *tracekitv1alpha1.TraceKitTenantStatus, st *status) error {
	st.t.Status.ObservedGeneration = t.Generation
	if equality.Semantic.DeepEqual(before, &t.Status) {
		return nil
	}
	orig := t.DeepCopy()
	orig.Status = *before
	if err := r.Status().Patch(ctx, t, client.MergeFrom(orig)); err != nil {
		return client.IgnoreNotFound(err)
	}
	log.FromContext(ctx).V(1).Info("status changed", "ready", meta.IsStatusConditionTrue(t.Status.Conditions, tracekitv1alpha1.ConditionReady))
	return nil
}

// Field indexes of TraceKitTenants in the manager's cache.
const (
	indexName       = "tracekit.dev/name"
	indexSecretRefs = "tracekit.dev/secret-refs"
)

// idHolder returns the tenant that owns t's name as tenant id when that is another one: the oldest
// TraceKitTenant of that name in any namespace. Without this check a tenant created in one namespace
// could take over the database role and Dex client of a namesake in another.
func (r *TenantReconciler) idHolder(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant) (*tracekitv1alpha1.TraceKitTenant, error) {
	var same tracekitv1alpha1.TraceKitTenantList
	if err := r.List(ctx, &same, client.MatchingFields{indexName: t.Name}); err != nil {
		return nil, err
	}
	holder := t
	for i := range same.Items {
		o := &same.Items[i]
		if older(o, holder) {
			holder = o
		}
	}
	if holder.UID == t.UID {
		return nil, nil
	}
	return holder, nil
}

func older(a, b *tracekitv1alpha1.TraceKitTenant) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	// Creation times have one-second resolution: within a second, the tenant already provisioning
	// (it carries the finalizer) keeps the id, so a later twin never takes it over.
	if fa, fb := controllerutil.ContainsFinalizer(a, finalizer), controllerutil.ContainsFinalizer(b, finalizer); fa != fb {
		return fa
	}
	return a.Namespace < b.Namespace
}

// SetupWithManager registers the controller: it watches tenants, every kind of object they own (so
// an edited or deleted object is repaired), and the Secrets they reference (so fixing one retries).
// The manager must have been created with CacheOptions(r.Options.GatewayAPI).
func (r *TenantReconciler) SetupWithManager(mgr ctrl.Manager) error {
	ctx := context.Background()
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &tracekitv1alpha1.TraceKitTenant{}, indexName, func(o client.Object) []string {
		return []string{o.GetName()}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &tracekitv1alpha1.TraceKitTenant{}, indexDatabase, func(o client.Object) []string {
		return databaseIndexValue(o.(*tracekitv1alpha1.TraceKitTenant))
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &tracekitv1alpha1.TraceKitTenant{}, indexSecretRefs, func(o client.Object) []string {
		return referencedSecrets(o.(*tracekitv1alpha1.TraceKitTenant))
	}); err != nil {
		return err
	}
	maxBackoff := r.Options.MaxBackoff
	if maxBackoff == 0 {
		maxBackoff = 5 * time.Minute
	}
	workers := r.Options.MaxConcurrentReconciles
	if workers == 0 {
		workers = 16
	}
	// The Secrets tenants reference are the users' and out of the manager's cache: a cache of their
	// names alone (no data, labels or annotations) tells when one appears or changes, and the
	// reconciler reads the data itself.
	secretNames, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient:       mgr.GetHTTPClient(),
		Scheme:           mgr.GetScheme(),
		Mapper:           mgr.GetRESTMapper(),
		DefaultTransform: nameOnly,
	})
	if err != nil {
		return err
	}
	if err := mgr.Add(secretNames); err != nil {
		return err
	}
	secret := &metav1.PartialObjectMetadata{}
	secret.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))

	b := ctrl.NewControllerManagedBy(mgr).
		// Status writes do not bump the generation, so the operator's own status patches do not loop;
		// marking a tenant for deletion does.
		For(&tracekitv1alpha1.TraceKitTenant{}, builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	for _, kind := range ownedKinds(r.Options.GatewayAPI) {
		b = b.Owns(kind)
	}
	return b.
		WatchesRawSource(source.Kind[client.Object](secretNames, secret, handler.EnqueueRequestsFromMapFunc(r.tenantsReferencing))).
		Watches(&tracekitv1alpha1.TraceKitTenant{}, handler.EnqueueRequestsFromMapFunc(r.namesakes)).
		Watches(&tracekitv1alpha1.TraceKitDatabase{}, handler.EnqueueRequestsFromMapFunc(r.tenantsOfDatabase), builder.WithPredicates(databaseChanged)).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: workers,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, maxBackoff),
		}).
		Complete(r)
}

func referencedSecrets(t *tracekitv1alpha1.TraceKitTenant) []string {
	var names []string
	if ref := t.Spec.Database.AdminSecretRef; ref != nil {
		names = append(names, ref.Name)
	}
	if t.Spec.APIKeys != nil {
		names = append(names, t.Spec.APIKeys.SecretName)
	}
	return names
}

// tenantsReferencing maps a Secret to the tenants in its namespace that read it.
func (r *TenantReconciler) tenantsReferencing(ctx context.Context, o client.Object) []reconcile.Request {
	var list tracekitv1alpha1.TraceKitTenantList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexSecretRefs: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list tenants referencing Secret", "secret", o.GetName())
		return nil
	}
	return requests(list.Items)
}

// tenantsOfDatabase maps a database to the tenants placed on it and those waiting to be placed.
func (r *TenantReconciler) tenantsOfDatabase(ctx context.Context, o client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, key := range []string{o.GetName(), unplaced} {
		var list tracekitv1alpha1.TraceKitTenantList
		if err := r.List(ctx, &list, client.MatchingFields{indexDatabase: key}); err != nil {
			log.FromContext(ctx).Error(err, "list tenants of database", "database", o.GetName())
			return nil
		}
		out = append(out, requests(list.Items)...)
	}
	return out
}

// namesakes maps a tenant to the other tenants of the same name, so that one waiting for the name
// takes it over when its holder goes away.
func (r *TenantReconciler) namesakes(ctx context.Context, o client.Object) []reconcile.Request {
	var list tracekitv1alpha1.TraceKitTenantList
	if err := r.List(ctx, &list, client.MatchingFields{indexName: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list tenants of the same name", "name", o.GetName())
		return nil
	}
	var others []tracekitv1alpha1.TraceKitTenant
	for _, t := range list.Items {
		if t.UID != o.GetUID() {
			others = append(others, t)
		}
	}
	return requests(others)
}

func requests(ts []tracekitv1alpha1.TraceKitTenant) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(ts))
	for _, t := range ts {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&t)})
	}
	return out
}
