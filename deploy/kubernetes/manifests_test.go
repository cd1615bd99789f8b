// Package kubernetes checks the manifests offline: no cluster runs here, so
// each kustomization is rendered with kustomize's own library (the same
// code as `kustomize build` and `kubectl apply -k`, pinned in go.mod) and
// every object is decoded strictly into its k8s.io/api type: a field the API
// does not have fails the test. Then what a cluster would only show later:
// probes, security context, the env names authsvc and the gateway read,
// selectors that match, the Secret references.
package kubernetes

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// repo is the repository root, two levels up.
const repo = "../.."

// rendered is every object of one kustomization, decoded strictly.
type rendered struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	budgets     []*policyv1.PodDisruptionBudget
	autoscalers []*autoscalingv2.HorizontalPodAutoscaler
	jobs        []*batchv1.Job
}

func build(t *testing.T, dir string) [][]byte {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var docs [][]byte
	for _, resource := range resources.Resources() {
		doc, err := resource.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, doc)
	}
	return docs
}

// decodeStrictly decodes one manifest into its k8s.io/api type, refusing
// unknown fields and unknown kinds.
func decodeStrictly(doc []byte, into *rendered) error {
	var head struct{ APIVersion, Kind string }
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return err
	}
	var target any
	switch head.APIVersion + " " + head.Kind {
	case "apps/v1 Deployment":
		d := &appsv1.Deployment{}
		into.deployments, target = append(into.deployments, d), d
	case "v1 Service":
		s := &corev1.Service{}
		into.services, target = append(into.services, s), s
	case "policy/v1 PodDisruptionBudget":
		p := &policyv1.PodDisruptionBudget{}
		into.budgets, target = append(into.budgets, p), p
	case "autoscaling/v2 HorizontalPodAutoscaler":
		h := &autoscalingv2.HorizontalPodAutoscaler{}
		into.autoscalers, target = append(into.autoscalers, h), h
	case "batch/v1 Job":
		j := &batchv1.Job{}
		into.jobs, target = append(into.jobs, j), j
	default:
		return fmt.Errorf("unexpected %s %s", head.APIVersion, head.Kind)
	}
	return yaml.UnmarshalStrict(doc, target)
}

func render(t *testing.T, dir string) rendered {
	t.Helper()
	var out rendered
	for _, doc := range build(t, dir) {
		if err := decodeStrictly(doc, &out); err != nil {
			t.Fatalf("%s: %v\n%s", dir, err, doc)
		}
	}
	return out
}

// namesIn reads every name matching pattern's first group from a source file.
func namesIn(t *testing.T, path, pattern, prefix string) map[string]bool {
	t.Helper()
	source, err := os.ReadFile(filepath.Join(repo, path))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, match := range regexp.MustCompile(pattern).FindAllStringSubmatch(string(source), -1) {
		names[prefix+match[1]] = true
	}
	if len(names) == 0 {
		t.Fatalf("no names matching %s in %s", pattern, path)
	}
	return names
}

// Settings every container may also carry: OpenTelemetry's standard
// variables and the libpq variable asyncpg reads for multi-host URLs.
var standardEnv = map[string]bool{
	"OTEL_SERVICE_NAME": true, "OTEL_RESOURCE_ATTRIBUTES": true,
	"OTEL_EXPORTER_OTLP_ENDPOINT": true, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": true,
	"OTEL_EXPORTER_OTLP_INSECURE": true, "OTEL_EXPORTER_OTLP_HEADERS": true,
	"OTEL_TRACES_SAMPLER": true, "OTEL_TRACES_SAMPLER_ARG": true,
	"PGTARGETSESSIONATTRS": true,
}

func checkEnv(t *testing.T, where string, container corev1.Container, known map[string]bool) {
	t.Helper()
	for _, env := range container.Env {
		if !known[env.Name] && !standardEnv[env.Name] {
			t.Errorf("%s: env %s is read by neither authsvc nor the gateway", where, env.Name)
		}
	}
	if len(container.EnvFrom) > 0 {
		t.Errorf("%s: envFrom hides the names from this check; list env one by one", where)
	}
}

func checkHardened(t *testing.T, where string, pod corev1.PodSpec) {
	t.Helper()
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: pod must set runAsNonRoot", where)
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 {
		t.Errorf("%s: pod must run as a non-zero uid", where)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("%s: no service-account token is needed; do not mount one", where)
	}
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s/%s: no securityContext", where, c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s/%s: root filesystem must be read-only", where, c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s/%s: allowPrivilegeEscalation must be false", where, c.Name)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
			t.Errorf("%s/%s: must drop ALL capabilities", where, c.Name)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: memory request and limit are required", where, c.Name)
		}
	}
}

func secretRefs(c corev1.Container) map[string]string {
	refs := map[string]string{}
	for _, env := range c.Env {
		if env.ValueFrom != nil && env.ValueFrom.SecretKeyRef != nil {
			refs[env.Name] = env.ValueFrom.SecretKeyRef.Name + "/" + env.ValueFrom.SecretKeyRef.Key
		}
	}
	return refs
}

func envValue(c corev1.Container, name string) string {
	for _, env := range c.Env {
		if env.Name == name {
			return env.Value
		}
	}
	return ""
}

func byName[T interface{ GetName() string }](t *testing.T, items []T, name string) T {
	t.Helper()
	for _, item := range items {
		if item.GetName() == name {
			return item
		}
	}
	t.Fatalf("no %s among the rendered objects", name)
	var none T
	return none
}

func TestAuthsvcDeploymentIsProbedHardenedAndConfiguredWithRealSettings(t *testing.T) {
	objects := render(t, "base")
	settings := namesIn(t, "docs/configuration.md", "`(AUTHSVC_[A-Z0-9_]+)`", "")
	deployment := byName(t, objects.deployments, "authsvc")
	pod := deployment.Spec.Template.Spec

	if deployment.Spec.Replicas == nil || *deployment.Spec.Replicas != 3 {
		t.Errorf("authsvc replicas = %v, want 3", deployment.Spec.Replicas)
	}
	checkHardened(t, "authsvc", pod)
	if len(pod.Containers) != 1 {
		t.Fatalf("authsvc: %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	checkEnv(t, "authsvc", c, settings)
	for probe, want := range map[string]string{"readiness": "authsvc.v1.Auth", "liveness": "", "startup": "authsvc.v1.Auth"} {
		p := map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe}[probe]
		if p == nil || p.GRPC == nil {
			t.Errorf("authsvc: %s probe must be a gRPC (grpc.health.v1) probe", probe)
			continue
		}
		if p.GRPC.Port != 50051 || p.GRPC.Service == nil || *p.GRPC.Service != want {
			t.Errorf("authsvc: %s probe asks port %d service %v, want 50051 %q", probe, p.GRPC.Port, p.GRPC.Service, want)
		}
	}
	if envValue(c, "AUTHSVC_LISTEN") != "0.0.0.0:50051" {
		t.Errorf("authsvc must listen on the probed port: AUTHSVC_LISTEN=%q", envValue(c, "AUTHSVC_LISTEN"))
	}
	wantSecrets := map[string]string{
		"AUTHSVC_DATABASE_URL":       "authsvc/database-url",
		"AUTHSVC_KEY_ENCRYPTION_KEY": "authsvc/key-encryption-key",
	}
	if got := secretRefs(c); !mapsEqual(got, wantSecrets) {
		t.Errorf("authsvc secret references = %v, want %v", got, wantSecrets)
	}
	if envValue(c, "PGTARGETSESSIONATTRS") != "read-write" {
		t.Errorf("several database hosts need PGTARGETSESSIONATTRS=read-write")
	}
	if pod.TerminationGracePeriodSeconds == nil || float64(*pod.TerminationGracePeriodSeconds) <= 10 {
		t.Errorf("terminationGracePeriodSeconds must exceed AUTHSVC_SHUTDOWN_GRACE")
	}
	mounts := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = true
	}
	if !mounts["/tmp"] {
		t.Errorf("authsvc needs a writable /tmp (the workers' metrics files) under a read-only root")
	}
}

func TestDisruptionBudgetAutoscalerAndServicesPointAtTheirPods(t *testing.T) {
	objects := render(t, "base")
	pods := map[string]labels.Set{}
	for _, d := range objects.deployments {
		selector := labels.SelectorFromSet(d.Spec.Selector.MatchLabels)
		if !selector.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("%s: selector does not match its own pods", d.Name)
		}
		pods[d.Name] = d.Spec.Template.Labels
	}
	budget := byName(t, objects.budgets, "authsvc")
	if !labels.SelectorFromSet(budget.Spec.Selector.MatchLabels).Matches(pods["authsvc"]) {
		t.Errorf("the PodDisruptionBudget selects no authsvc pod")
	}
	if budget.Spec.MaxUnavailable == nil || budget.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable = %v, want 1", budget.Spec.MaxUnavailable)
	}
	hpa := byName(t, objects.autoscalers, "authsvc")
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != "authsvc" {
		t.Errorf("the autoscaler targets %v", hpa.Spec.ScaleTargetRef)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 3 || hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas {
		t.Errorf("the autoscaler's range %v..%d must start at the 3 replicas", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	for service, deployment := range map[string]string{"authsvc": "authsvc", "authsvc-pods": "authsvc", "authsvc-gateway": "authsvc-gateway"} {
		s := byName(t, objects.services, service)
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(pods[deployment]) {
			t.Errorf("Service %s selects no %s pod", service, deployment)
		}
		d := byName(t, objects.deployments, deployment)
		named := map[string]bool{}
		for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
			named[p.Name] = true
		}
		for _, p := range s.Spec.Ports {
			if !named[p.TargetPort.String()] {
				t.Errorf("Service %s port %s targets %q, which the pod does not name", service, p.Name, p.TargetPort.String())
			}
		}
	}
}

func TestGatewayDeploymentIsProbedHardenedAndPointsAtTheAuthsvcService(t *testing.T) {
	objects := render(t, "base")
	flags := namesIn(t, "gateway/main.go", `env\("([A-Z0-9_]+)"`, "AUTHSVC_GATEWAY_")
	deployment := byName(t, objects.deployments, "authsvc-gateway")
	pod := deployment.Spec.Template.Spec
	checkHardened(t, "gateway", pod)
	c := pod.Containers[0]
	checkEnv(t, "gateway", c, flags)
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("gateway readiness must be GET /readyz")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("gateway liveness must be GET /healthz")
	}
	service := byName(t, objects.services, "authsvc")
	upstream := fmt.Sprintf("%s:%d", service.Name, service.Spec.Ports[0].Port)
	if !slices.Equal(c.Args, []string{"--upstream", upstream}) {
		t.Errorf("gateway args = %q, want --upstream %s", c.Args, upstream)
	}
}

func TestMigrationJobRunsAuthsvcMigrateWithTheDatabaseSecret(t *testing.T) {
	objects := render(t, "migrate")
	settings := namesIn(t, "docs/configuration.md", "`(AUTHSVC_[A-Z0-9_]+)`", "")
	job := byName(t, objects.jobs, "authsvc-migrate")
	pod := job.Spec.Template.Spec
	checkHardened(t, "migrate", pod)
	c := pod.Containers[0]
	checkEnv(t, "migrate", c, settings)
	if !slices.Equal(c.Command, []string{"authsvc", "migrate"}) {
		t.Errorf("migration command = %q", c.Command)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy = %s, want Never (the Job retries)", pod.RestartPolicy)
	}
	if got := secretRefs(c); got["AUTHSVC_DATABASE_URL"] != "authsvc/database-url" {
		t.Errorf("migration secret references = %v", got)
	}
	server := byName(t, render(t, "base").deployments, "authsvc").Spec.Template.Spec.Containers[0].Image
	if c.Image != server {
		t.Errorf("migration image %s differs from the server's %s", c.Image, server)
	}
}

func TestStrictDecodingRefusesAFieldTheAPIDoesNotHave(t *testing.T) {
	doc := []byte(strings.Join([]string{
		"apiVersion: apps/v1", "kind: Deployment", "metadata: {name: x}",
		"spec: {replicas: 1, replica: 3, selector: {matchLabels: {a: b}},",
		"  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}",
	}, "\n"))
	var out rendered
	if err := decodeStrictly(doc, &out); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("a misspelt field decoded without error: %v", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestExampleOverlayKeepsEverythingCheckedAndAddsTracing(t *testing.T) {
	objects := render(t, "example")
	settings := namesIn(t, "docs/configuration.md", "`(AUTHSVC_[A-Z0-9_]+)`", "")
	flags := namesIn(t, "gateway/main.go", `env\("([A-Z0-9_]+)"`, "AUTHSVC_GATEWAY_")
	for name, known := range map[string]map[string]bool{"authsvc": settings, "authsvc-gateway": flags} {
		d := byName(t, objects.deployments, name)
		if d.Namespace != "auth" {
			t.Errorf("%s: namespace %q, want the overlay's", name, d.Namespace)
		}
		pod := d.Spec.Template.Spec
		checkHardened(t, name, pod)
		c := pod.Containers[0]
		checkEnv(t, name, c, known)
		if !strings.HasPrefix(c.Image, "registry.example.com/") {
			t.Errorf("%s: image %s, want the overlay's registry", name, c.Image)
		}
		if envValue(c, "OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
			t.Errorf("%s: the overlay's tracing endpoint is missing", name)
		}
	}
	authsvc := byName(t, objects.deployments, "authsvc").Spec.Template.Spec.Containers[0]
	if envValue(authsvc, "AUTHSVC_TRUSTED_PROXIES") != "10.0.0.0/14" {
		t.Errorf("the overlay's trusted proxies did not replace the base's")
	}
	if len(secretRefs(authsvc)) != 2 || authsvc.ReadinessProbe == nil {
		t.Errorf("the overlay lost the base's secret references or probes")
	}
}

func TestExampleMigrationUsesTheOverlaysNamespaceAndImage(t *testing.T) {
	job := byName(t, render(t, "example/migrate").jobs, "authsvc-migrate")
	server := byName(t, render(t, "example").deployments, "authsvc")
	if job.Namespace != server.Namespace {
		t.Errorf("migration in namespace %q, server in %q", job.Namespace, server.Namespace)
	}
	if got, want := job.Spec.Template.Spec.Containers[0].Image, server.Spec.Template.Spec.Containers[0].Image; got != want {
		t.Errorf("migration image %s, server image %s", got, want)
	}
}
