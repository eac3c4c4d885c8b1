package controllers

import (
	"context"
	"testing"

	dexapi "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// A tenant named like one of the Helm chart's components (auth, operator, postgresql) in the release
// namespace would be given that component's object names; the operator must not take them over.
func TestTenant_NameConflictLeavesForeignObjectsAlone(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	ns, name := newNamespace(t), uniqueName("auth")
	server := "tracekit-" + name
	newAdminSecret(t, ns, "platform-db")

	// The chart's Deployment, as Helm makes it: its labels, no owner.
	labels := map[string]string{"app.kubernetes.io/name": "tracekit", "app.kubernetes.io/component": "auth", managedByLabel: "Helm"}
	foreign := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: server, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "auth", Image: "ghcr.io/tracekit/tracekit:chart"}}},
			},
		},
	}
	g.Expect(k8s.Create(ctx, foreign)).To(Succeed())

	g.Expect(k8s.Create(ctx, newTenant(ns, name, "platform-db"))).To(Succeed())
	tt := eventuallyCondition(g, ns, name, tracekitv1alpha1.ConditionReady, metav1.ConditionFalse, "NameConflict")
	msg := meta.FindStatusCondition(tt.Status.Conditions, tracekitv1alpha1.ConditionReady).Message
	g.Expect(msg).To(ContainSubstring("Deployment " + server + " already exists in namespace " + ns + " and is managed by Helm"))
	g.Expect(msg).To(ContainSubstring("Rename the tenant (delete it and create it under another name), or delete or move that Deployment"))
	g.Expect(tt.Status.MCPURL).To(BeEmpty())
	g.Expect(tt.Finalizers).To(BeEmpty(), "nothing was provisioned, so there is nothing to clean up")
	g.Eventually(func(g Gomega) {
		var events eventsv1.EventList
		g.Expect(k8s.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
		g.Expect(events.Items).To(ContainElement(And(
			HaveField("Type", corev1.EventTypeWarning),
			HaveField("Reason", "NameConflict"),
			HaveField("Regarding.Name", name),
			HaveField("Note", ContainSubstring("Deployment "+server)),
		)))
	}).Should(Succeed())

	// Untouched: not the Deployment, nor anything else of the tenant's, in the cluster or outside.
	d := &appsv1.Deployment{}
	getObject(g, ns, server, d)
	g.Expect(d.ResourceVersion).To(Equal(foreign.ResourceVersion))
	g.Expect(d.OwnerReferences).To(BeEmpty())
	for _, obj := range []client.Object{&corev1.Secret{}, &corev1.ServiceAccount{}, &corev1.Service{}} {
		key := types.NamespacedName{Namespace: ns, Name: server}
		if _, ok := obj.(*corev1.Secret); ok {
			key.Name = server + "-db"
		}
		g.Expect(k8s.Get(ctx, key, obj)).To(WithTransform(apierrors.IsNotFound, BeTrue()), "%T %s", obj, key.Name)
	}
	_, err := dex.GetClient(ctx, &dexapi.GetClientReq{Id: "tenant-" + name})
	g.Expect(err).To(MatchError(ContainSubstring("not found")))
	expectResyncWritesNothing(g, ns, name)

	// Once the object is out of the way the tenant proceeds, without being touched again.
	g.Expect(k8s.Delete(ctx, d)).To(Succeed())
	tt = eventuallyReady(g, ns, name)
	getObject(g, ns, server, d)
	g.Expect(metav1.IsControlledBy(d, tt)).To(BeTrue())
}

// An object the tenant owns but whose label someone removed drops out of the manager's cache; it is
// still the tenant's, and is repaired rather than reported as a conflict.
func TestTenant_OwnedObjectWithoutLabelIsStillOwned(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	ns, name := newNamespace(t), uniqueName("relabel")
	newAdminSecret(t, ns, "platform-db")
	g.Expect(k8s.Create(ctx, newTenant(ns, name, "platform-db"))).To(Succeed())
	eventuallyReady(g, ns, name)
	server := "tracekit-" + name

	g.Eventually(func(g Gomega) {
		svc := &corev1.Service{}
		getObject(g, ns, server, svc)
		delete(svc.Labels, managedByLabel)
		g.Expect(k8s.Update(ctx, svc, client.FieldOwner("kubectl-edit"))).To(Succeed())
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		svc := &corev1.Service{}
		getObject(g, ns, server, svc)
		g.Expect(svc.Labels).To(HaveKeyWithValue(managedByLabel, fieldOwner))
	}).Should(Succeed())
	eventuallyReady(g, ns, name)
}
