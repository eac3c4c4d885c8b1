package clustertest

import (
	"context"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// envtest runs no kube-controller-manager and no kubelets, so nothing reports a Deployment's pods
// available. A test either says so for the Deployments it runs (MarkAvailable, once RunDeployment
// returned) or has every Deployment reported available (ReportDeploymentsAvailable).

// MarkAvailable reports every replica of the Deployment available, as the Deployment controller
// would once its pods pass their probes.
func (c *Cluster) MarkAvailable(t testing.TB, ns, name string) {
	t.Helper()
	Eventually(t, "mark "+name+" available", time.Minute, func() error {
		d := &appsv1.Deployment{}
		if err := c.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			return err
		}
		setAvailable(d)
		return c.Client.Status().Update(context.Background(), d)
	})
}

// ReportDeploymentsAvailable runs, until the test ends, a controller that reports every replica of
// every Deployment available.
func (c *Cluster) ReportDeploymentsAvailable(t testing.TB, ctx context.Context) {
	t.Helper()
	mgr, err := ctrl.NewManager(c.Config, ctrl.Options{Scheme: c.Client.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	k := mgr.GetClient()
	err = ctrl.NewControllerManagedBy(mgr).Named("fake-deployment-controller").For(&appsv1.Deployment{}).
		Complete(reconcileFunc(func(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
			d := &appsv1.Deployment{}
			if err := k.Get(ctx, req.NamespacedName, d); err != nil {
				return ctrl.Result{}, client.IgnoreNotFound(err)
			}
			if !setAvailable(d) {
				return ctrl.Result{}, nil
			}
			return ctrl.Result{}, client.IgnoreNotFound(k.Status().Update(ctx, d))
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("fake deployment controller: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// setAvailable sets d's status to every replica available and says whether that changed it.
func setAvailable(d *appsv1.Deployment) bool {
	n := int32(1)
	if d.Spec.Replicas != nil {
		n = *d.Spec.Replicas
	}
	if d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == n && d.Status.UpdatedReplicas == n {
		return false
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
	return true
}

type reconcileFunc func(context.Context, ctrl.Request) (ctrl.Result, error)

func (f reconcileFunc) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return f(ctx, req)
}
