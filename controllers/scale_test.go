package controllers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// BenchmarkTenants200 applies 200 tenants at once to the suite's cluster (one shared PostgreSQL
// database, Dex, the manager with its production defaults: 4 workers, 5 minute recheck) and reports how long until all are
// Ready, the writes a full resync makes with nothing changed (the target is zero), and how long
// deleting all 200 takes, external records included. Run it with `make bench-operator`.
func BenchmarkTenants200(b *testing.B) {
	for range b.N {
		scaleRun(b, 200)
	}
}

func scaleRun(b *testing.B, n int) {
	ctx := context.Background()
	ns := newNamespace(b)
	newAdminSecret(b, ns, "platform-db")
	prefix := uniqueName("scale")
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	writesBefore, eventsBefore, dexBefore := managerWrites.writes.Load(), managerEvents.n.Load(), managerOAuth.writes.Load()

	start := time.Now()
	parallel(b, names, func(name string) error {
		t := newTenant(ns, name, "platform-db")
		t.Spec.Replicas = ptr.To[int32](2)
		t.Spec.AlertRules = []tracekitv1alpha1.AlertRule{{Name: "errors", Service: "api", Metric: tracekitv1alpha1.MetricErrorRate, Comparison: "gt", Threshold: "0.05"}}
		return k8s.Create(ctx, t)
	})
	waitFor(b, ns, 2*time.Minute, func(list []tracekitv1alpha1.TraceKitTenant) bool {
		ready := 0
		for _, t := range list {
			if meta.IsStatusConditionTrue(t.Status.Conditions, tracekitv1alpha1.ConditionReady) {
				ready++
			}
		}
		return ready == n
	})
	toReady := time.Since(start)
	createWrites := managerWrites.writes.Load() - writesBefore
	createEvents := managerEvents.n.Load() - eventsBefore
	createDex := managerOAuth.writes.Load() - dexBefore

	// A resync: every tenant reconciled once more with nothing changed, through a reconciler whose
	// writes are counted; the manager's own periodic rechecks run meanwhile and are counted too.
	counting := &countingClient{Client: reconciler.Client}
	events := &countingRecorder{EventRecorder: reconciler.Recorder}
	oauth := &countingOAuth{OAuthClients: reconciler.OAuth}
	r := *reconciler
	r.Client, r.Recorder, r.OAuth = counting, events, oauth
	managerBefore := managerWrites.writes.Load() + managerEvents.n.Load() + managerOAuth.writes.Load()
	resyncStart := time.Now()
	for _, name := range names {
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}}); err != nil {
			b.Fatal(err)
		}
	}
	resync := time.Since(resyncStart)
	resyncWrites := counting.writes.Load() + events.n.Load() + oauth.writes.Load()
	managerResync := managerWrites.writes.Load() + managerEvents.n.Load() + managerOAuth.writes.Load() - managerBefore

	deleteStart := time.Now()
	parallel(b, names, func(name string) error {
		return k8s.Delete(ctx, newTenant(ns, name, ""))
	})
	waitFor(b, ns, 2*time.Minute, func(list []tracekitv1alpha1.TraceKitTenant) bool { return len(list) == 0 })
	toDeleted := time.Since(deleteStart)

	b.ReportMetric(toReady.Seconds(), "s-to-ready")
	b.ReportMetric(float64(createWrites)/float64(n), "api-writes/tenant-created")
	b.ReportMetric(float64(createEvents)/float64(n), "events/tenant-created")
	b.ReportMetric(float64(createDex)/float64(n), "dex-writes/tenant-created")
	b.ReportMetric(float64(resyncWrites), "writes/resync")
	b.ReportMetric(float64(managerResync), "manager-writes-during-resync")
	b.ReportMetric(resync.Seconds()*1000/float64(n), "ms/tenant-resynced")
	b.ReportMetric(toDeleted.Seconds(), "s-to-deleted")
	if toReady > time.Minute {
		b.Errorf("%d tenants took %s to become Ready; the target is 60s", n, toReady.Round(time.Millisecond))
	}
	if resyncWrites != 0 || managerResync != 0 {
		b.Errorf("a resync with nothing changed wrote %d times (manager meanwhile: %d); want none", resyncWrites, managerResync)
	}
}

// parallel runs fn for every name, 16 at a time, as `kubectl apply` of many files would.
func parallel(b *testing.B, names []string, fn func(string) error) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, len(names))
	for _, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(name); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// waitFor polls the namespace's tenants until done says so.
func waitFor(b *testing.B, ns string, timeout time.Duration, done func([]tracekitv1alpha1.TraceKitTenant) bool) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		var list tracekitv1alpha1.TraceKitTenantList
		if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		if done(list.Items) {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			b.Fatalf("gave up after %s", timeout)
		}
	}
}
