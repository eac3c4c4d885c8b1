package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
	"github.com/tracekit/tracekit/internal/tenantconfig"
)

const (
	// serverPort is where `tracekit server` listens (--addr).
	serverPort = 8080
	// grpcPort is where it receives OTLP/gRPC (--grpc-addr), the port OTLP exporters default to.
	grpcPort = 4317
	// serverUID is the non-root user of the server image.
	serverUID = 65532
	// configHashAnnotation on the pod template changes whenever a Secret or ConfigMap the pods read
	// changes, so the pods roll to pick it up.
	configHashAnnotation = "tracekit.dev/config-hash"
)

// deploymentParams are the inputs of the Deployment besides the tenant.
type deploymentParams struct {
	image      string
	publicURL  string
	authIssuer string
	configHash string
}

// reconcileDeployment runs the tenant's MCP server once its database and OAuth Secrets exist, and
// reports whether any of its pods are available.
func (r *TenantReconciler) reconcileDeployment(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, base *url.URL,
	db dbResult, oauth map[string][]byte, rules map[string]string, st *status) error {
	if db.secret != nil && oauth != nil && rules != nil {
		image := t.Spec.Image
		if image == "" {
			image = r.Options.ServerImage
		}
		p := deploymentParams{image: image, publicURL: base.String(), authIssuer: r.Options.AuthIssuer,
			configHash: configHash(db.secret, oauth, rules)}
		if err := apply(ctx, r, st, &appsv1.Deployment{}, desiredDeployment(t, p), appsv1ac.ExtractDeployment); err != nil {
			return err
		}
	}
	dep := &appsv1.Deployment{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: serverName(t)}, dep); err != nil {
		if client.IgnoreNotFound(err) != nil {
			return err
		}
		st.set(tracekitv1alpha1.ConditionAvailable, false, "WaitingForSecrets",
			"the MCP server starts once the database and OAuth client are ready (see DatabaseReady and AuthClientReady)")
		return nil
	}
	t.Status.AvailableReplicas = dep.Status.AvailableReplicas
	want := replicas(t)
	switch {
	case t.Spec.Suspend:
		st.set(tracekitv1alpha1.ConditionAvailable, false, "Suspended", "spec.suspend is true: the MCP server is scaled to zero")
	case dep.Status.AvailableReplicas > 0:
		st.set(tracekitv1alpha1.ConditionAvailable, true, "MinimumReplicasAvailable",
			"%d of %d MCP server pods available", dep.Status.AvailableReplicas, want)
	default:
		st.set(tracekitv1alpha1.ConditionAvailable, false, "NoPodsAvailable",
			"no MCP server pod is available yet (0 of %d); if this lasts, see `kubectl describe deployment %s` and its pods' events",
			want, serverName(t))
	}
	return nil
}

func replicas(t *tracekitv1alpha1.TraceKitTenant) int32 {
	switch {
	case t.Spec.Suspend:
		return 0
	case t.Spec.Replicas == nil:
		return 1
	default:
		return *t.Spec.Replicas
	}
}

// configHash digests the data of every Secret and ConfigMap the pods read.
func configHash(maps ...any) string {
	h := sha256.New()
	for _, m := range maps {
		switch m := m.(type) {
		case map[string][]byte:
			for _, k := range sortedKeys(m) {
				fmt.Fprintf(h, "%d:%s=%d:%s;", len(k), k, len(m[k]), m[k])
			}
		case map[string]string:
			for _, k := range sortedKeys(m) {
				fmt.Fprintf(h, "%d:%s=%d:%s;", len(k), k, len(m[k]), m[k])
			}
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// desiredDeployment runs `tracekit server` for the tenant: non-root on a read-only root filesystem,
// probed on /healthz and /readyz, rolling one new pod in before an old one goes.
func desiredDeployment(t *tracekitv1alpha1.TraceKitTenant, p deploymentParams) *appsv1ac.DeploymentApplyConfiguration {
	env := []*corev1ac.EnvVarApplyConfiguration{
		secretEnv(tenantconfig.EnvDatabaseURL, dbSecretName(t), "url"),
		corev1ac.EnvVar().WithName(tenantconfig.EnvTenant).WithValue(t.Name),
		corev1ac.EnvVar().WithName(tenantconfig.EnvPublicURL).WithValue(p.publicURL),
		corev1ac.EnvVar().WithName(tenantconfig.EnvAlertRules).WithValue(tenantconfig.AlertRulesPath),
		corev1ac.EnvVar().WithName(tenantconfig.EnvRetention).WithValue(retention(t)),
		secretEnv(tenantconfig.EnvOAuthClientID, oauthSecretName(t), "client-id"),
		secretEnv(tenantconfig.EnvOAuthClientSecret, oauthSecretName(t), "client-secret"),
	}
	if p.authIssuer != "" {
		env = append(env, corev1ac.EnvVar().WithName(tenantconfig.EnvAuthIssuer).WithValue(p.authIssuer))
	}
	if ix := t.Spec.AttributeIndex; ix != nil {
		if len(ix.AdditionalKeys) > 0 {
			env = append(env, corev1ac.EnvVar().WithName(tenantconfig.EnvIndexedAttributes).WithValue(strings.Join(ix.AdditionalKeys, ",")))
		}
		if ix.MaxValuesPerDay != nil {
			env = append(env, corev1ac.EnvVar().WithName(tenantconfig.EnvAttributeValuesPerDay).WithValue(strconv.Itoa(int(*ix.MaxValuesPerDay))))
		}
	}
	httpGet := func(path string) *corev1ac.HTTPGetActionApplyConfiguration {
		return corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString("http"))
	}
	container := corev1ac.Container().
		WithName("server").
		WithImage(p.image).
		WithArgs("server", fmt.Sprintf("--addr=:%d", serverPort), fmt.Sprintf("--grpc-addr=:%d", grpcPort)).
		WithPorts(corev1ac.ContainerPort().WithName("http").WithContainerPort(serverPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName("otlp-grpc").WithContainerPort(grpcPort).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(env...).
		WithResources(resources(t)).
		WithLivenessProbe(corev1ac.Probe().WithHTTPGet(httpGet("/healthz")).WithPeriodSeconds(10).WithFailureThreshold(3)).
		WithReadinessProbe(corev1ac.Probe().WithHTTPGet(httpGet("/readyz")).WithPeriodSeconds(5).WithFailureThreshold(2)).
		WithSecurityContext(corev1ac.SecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(serverUID).
			WithRunAsGroup(serverUID).
			WithReadOnlyRootFilesystem(true).
			WithAllowPrivilegeEscalation(false).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName("config").WithMountPath(tenantconfig.ConfigDir).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"))

	pod := corev1ac.PodTemplateSpec().
		WithLabels(objectLabels(t)).
		WithAnnotations(map[string]string{configHashAnnotation: p.configHash}).
		WithSpec(corev1ac.PodSpec().
			WithServiceAccountName(serverName(t)).
			WithAutomountServiceAccountToken(false).
			WithEnableServiceLinks(false).
			WithSecurityContext(corev1ac.PodSecurityContext().
				WithRunAsNonRoot(true).
				WithFSGroup(serverUID).
				WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
			WithContainers(container).
			WithVolumes(
				corev1ac.Volume().WithName("config").WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(alertRulesName(t))),
				corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("64Mi")))))

	return appsv1ac.Deployment(serverName(t), t.Namespace).
		WithLabels(objectLabels(t)).
		WithOwnerReferences(ownerRef(t)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(replicas(t)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(t))).
			WithStrategy(appsv1ac.DeploymentStrategy().
				WithType(appsv1.RollingUpdateDeploymentStrategyType).
				WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
					WithMaxUnavailable(intstr.FromInt32(0)).
					WithMaxSurge(intstr.FromInt32(1)))).
			WithTemplate(pod))
}

func secretEnv(name, secret, key string) *corev1ac.EnvVarApplyConfiguration {
	return corev1ac.EnvVar().WithName(name).WithValueFrom(corev1ac.EnvVarSource().
		WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(secret).WithKey(key)))
}

func retention(t *tracekitv1alpha1.TraceKitTenant) string {
	if t.Spec.Retention == nil {
		return "720h0m0s"
	}
	return t.Spec.Retention.Duration.String()
}

// resources are the spec's, or requests small enough to pack many tenants per node with a memory
// limit that stops one tenant from starving the others.
func resources(t *tracekitv1alpha1.TraceKitTenant) *corev1ac.ResourceRequirementsApplyConfiguration {
	rr := corev1ac.ResourceRequirements()
	if t.Spec.Resources == nil {
		return rr.
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}).
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")})
	}
	if len(t.Spec.Resources.Requests) > 0 {
		rr.WithRequests(t.Spec.Resources.Requests)
	}
	if len(t.Spec.Resources.Limits) > 0 {
		rr.WithLimits(t.Spec.Resources.Limits)
	}
	for _, c := range t.Spec.Resources.Claims {
		rr.WithClaims(corev1ac.ResourceClaim().WithName(c.Name).WithRequest(c.Request))
	}
	return rr
}
