package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// The manager's cache holds the operator's own objects, not the users' Secrets and ConfigMaps; the
// Secrets a tenant references are read all the same.
func TestManagerCache_HoldsOnlyTheOperatorsObjects(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	ns, name := newNamespace(t), uniqueName("cached")
	newAdminSecret(t, ns, "platform-db")
	createSecret(t, ns, "keys", map[string]string{"ci": testAPIKey})
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "team-settings"}})).To(Succeed())
	tenant := newTenant(ns, name, "platform-db")
	tenant.Spec.APIKeys = &tracekitv1alpha1.APIKeyBootstrap{SecretName: "keys"}
	g.Expect(k8s.Create(ctx, tenant)).To(Succeed())
	eventuallyReady(g, ns, name)

	for _, own := range []string{"tracekit-" + name + "-db", "tracekit-" + name + "-oauth"} {
		g.Expect(managerCache.Get(ctx, types.NamespacedName{Namespace: ns, Name: own}, &corev1.Secret{})).To(Succeed(), own)
	}
	g.Expect(managerCache.Get(ctx, types.NamespacedName{Namespace: ns, Name: "tracekit-" + name + "-alert-rules"}, &corev1.ConfigMap{})).To(Succeed())
	for _, users := range []string{"platform-db", "keys"} {
		err := managerCache.Get(ctx, types.NamespacedName{Namespace: ns, Name: users}, &corev1.Secret{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Secret %s: %v", users, err)
	}
	err := managerCache.Get(ctx, types.NamespacedName{Namespace: ns, Name: "team-settings"}, &corev1.ConfigMap{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "ConfigMap team-settings: %v", err)
}

// A referenced Secret is out of the manager's cache, yet a change to it reaches a tenant that waits
// for it (a tenant that is not Ready is not rechecked: only the watch can tell), and its data is read
// afresh.
func TestTenant_ChangedReferencedSecretsAreNoticed(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	ns, name := newNamespace(t), uniqueName("watched")
	adminURL := storetest.PostgresDSN(t)
	createSecret(t, ns, "platform-db", map[string]string{"uri": adminURL})
	createSecret(t, ns, "keys", map[string]string{"ci": testAPIKey})
	tenant := newTenant(ns, name, "platform-db")
	tenant.Spec.APIKeys = &tracekitv1alpha1.APIKeyBootstrap{SecretName: "keys"}
	g.Expect(k8s.Create(ctx, tenant)).To(Succeed())
	eventuallyCondition(g, ns, name, tracekitv1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, "AdminSecretKeyMissing")
	// The reconciles that the tenant's first objects set off may still see the first change; by the
	// second they are over.
	updateSecret(g, ns, "platform-db", "url", "mysql://admin@db/tracekit")
	eventuallyCondition(g, ns, name, tracekitv1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, "AdminURLInvalid")
	updateSecret(g, ns, "platform-db", "url", adminURL)
	eventuallyReady(g, ns, name)

	// A key added to the bootstrap Secret is imported.
	added := "tk_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"
	updateSecret(g, ns, "keys", "deploy", added)
	admin, err := store.Open(ctx, adminURL)
	g.Expect(err).NotTo(HaveOccurred())
	defer admin.Close()
	g.Eventually(func(g Gomega) {
		key, err := admin.LookupAPIKey(ctx, added)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(key.TenantID).To(Equal(name))
		g.Expect(key.Name).To(Equal("deploy"))
	}).Should(Succeed())
}

func updateSecret(g *WithT, ns, name, key, value string) {
	g.Eventually(func(g Gomega) {
		s := &corev1.Secret{}
		getObject(g, ns, name, s)
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[key] = []byte(value)
		g.Expect(k8s.Update(context.Background(), s)).To(Succeed())
	}).Should(Succeed())
}
