// kube-validate checks rendered Kubernetes manifests (kustomize build output) offline.
//
// Each document is decoded strictly into the official Go types of its API: k8s.io/api for
// the core kinds, KEDA's apis/keda/v1alpha1 for ScaledObject and TriggerAuthentication,
// and prometheus-operator's monitoring/v1 for ServiceMonitor. An unknown or misspelt field,
// a duplicate field, a wrong type or an unserved apiVersion is an error. KEDA's own
// admission checks (replica bounds, fallback, triggers) run on every ScaledObject. Then
// the project's deployment rules run across the documents of one bundle (one file):
// restricted pod security, probes on the sidecar, grace period above the drain bound,
// replicas bounded by partitions, selectors that select something, Secret files mounted as
// directories (not subPath), and probes and ServiceMonitor that follow the sidecar's TLS
// and bearer-token settings.
//
// Usage: kube-validate [--topics topics.yaml] [--defer-group G]... bundle.yaml...
//
// Documents of a --defer-group API group (kafka.strimzi.io: Strimzi's types are Java)
// are skipped here and validated by scripts/deploy/strimzi-validate.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var deferGroups multiFlag
	topicsFile := flag.String("topics", "", "rendered k8s/topics (KafkaTopic documents) for partition counts")
	flag.Var(&deferGroups, "defer-group", "API group validated elsewhere (repeatable)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: kube-validate [--topics FILE] [--defer-group G]... BUNDLE.yaml...")
		os.Exit(2)
	}

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme,
		networkingv1.AddToScheme, autoscalingv2.AddToScheme, kedav1alpha1.AddToScheme,
		monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			fmt.Fprintf(os.Stderr, "kube-validate: building scheme: %v\n", err)
			os.Exit(2)
		}
	}
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})

	partitions := map[string]int64{}
	if *topicsFile != "" {
		var err error
		if partitions, err = readPartitions(*topicsFile); err != nil {
			fmt.Fprintf(os.Stderr, "kube-validate: %s: %v\n", *topicsFile, err)
			os.Exit(2)
		}
	}

	failed := 0
	for _, file := range flag.Args() {
		objs, problems := decodeBundle(file, strict, deferGroups)
		if len(problems) == 0 {
			problems = checkBundle(objs, partitions)
		}
		for _, p := range problems {
			fmt.Printf("FAIL %s: %s\n", file, p)
		}
		if len(problems) > 0 {
			failed++
			continue
		}
		fmt.Printf("ok   %s: %d objects\n", file, len(objs))
	}
	if failed > 0 {
		os.Exit(1)
	}
}

type object struct {
	kind, name string
	obj        runtime.Object
}

func splitDocuments(data []byte) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) > 0 && strings.TrimSpace(stripComments(doc)) != "" {
			docs = append(docs, doc)
		}
	}
}

func decodeBundle(file string, strict runtime.Decoder, deferGroups []string) ([]object, []string) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, []string{err.Error()}
	}
	docs, err := splitDocuments(data)
	if err != nil {
		return nil, []string{err.Error()}
	}
	var objs []object
	var problems []string
	for i, doc := range docs {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			problems = append(problems, fmt.Sprintf("document %d: %v", i+1, err))
			continue
		}
		id := fmt.Sprintf("%s %s/%s", head.APIVersion, head.Kind, head.Metadata.Name)
		group := ""
		if slash := strings.Index(head.APIVersion, "/"); slash >= 0 {
			group = head.APIVersion[:slash]
		}
		if contains(deferGroups, group) {
			continue
		}
		obj, _, err := strict.Decode(doc, nil, nil)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		objs = append(objs, object{kind: head.Kind, name: head.Metadata.Name, obj: obj})
	}
	return objs, problems
}

// checkBundle applies the project's deployment rules to one rendered overlay.
func checkBundle(objs []object, partitions map[string]int64) []string {
	var p []string
	fail := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	configMaps := map[string]*corev1.ConfigMap{}
	services := map[string]*corev1.Service{}
	deployments := map[string]*appsv1.Deployment{}
	type podOwner struct {
		id     string
		labels map[string]string
		spec   *corev1.PodSpec
	}
	var pods []podOwner
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.ConfigMap:
			configMaps[v.Name] = v
		case *corev1.Service:
			services[v.Name] = v
		case *appsv1.Deployment:
			deployments[v.Name] = v
			pods = append(pods, podOwner{"Deployment/" + v.Name, v.Spec.Template.Labels, &v.Spec.Template.Spec})
			sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector)
			if err != nil || !sel.Matches(labels.Set(v.Spec.Template.Labels)) {
				fail("Deployment/%s: selector does not match its pod template labels", v.Name)
			}
		case *batchv1.CronJob:
			t := &v.Spec.JobTemplate.Spec.Template
			pods = append(pods, podOwner{"CronJob/" + v.Name, t.Labels, &t.Spec})
		case *batchv1.Job:
			pods = append(pods, podOwner{"Job/" + v.Name, v.Spec.Template.Labels, &v.Spec.Template.Spec})
		}
	}
	selects := func(sel *metav1.LabelSelector) bool {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return false
		}
		for _, po := range pods {
			if s.Matches(labels.Set(po.labels)) {
				return true
			}
		}
		return false
	}

	for _, po := range pods {
		checkPodSecurity(po.id, po.spec, configMaps, fail)
		checkSecretFiles(po.id, po.spec, configMaps, fail)
	}
	// The sidecar's settings, which the ServiceMonitor must follow.
	scorerEnv := map[string]string{}
	for _, d := range deployments {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] == "scorer" {
			scorerEnv = envOf(&d.Spec.Template.Spec, configMaps)
		}
	}
	for _, o := range objs {
		if _, isNamespace := o.obj.(*corev1.Namespace); isNamespace {
			continue
		}
		if m, ok := o.obj.(metav1.Object); ok && m.GetNamespace() == "" {
			fail("%s/%s: no namespace (set `namespace:` in the kustomization)", o.kind, o.name)
		}
	}

	patientsTopic, drainMS := "", int64(-1)
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			if v.Spec.Template.Labels["app.kubernetes.io/component"] != "scorer" {
				continue
			}
			env := envOf(&v.Spec.Template.Spec, configMaps)
			patientsTopic = env["SCORER_PATIENTS_TOPIC"]
			if ms, err := strconv.ParseInt(env["SCORER_DRAIN_TIMEOUT_MS"], 10, 64); err == nil {
				drainMS = ms
			} else {
				fail("Deployment/%s: SCORER_DRAIN_TIMEOUT_MS is not set to an integer", v.Name)
			}
			checkScorer(v, env, drainMS, fail)
		case *corev1.Service:
			if !selects(&metav1.LabelSelector{MatchLabels: v.Spec.Selector}) {
				fail("Service/%s: selector %v matches no pod template", v.Name, v.Spec.Selector)
			}
		case *policyv1.PodDisruptionBudget:
			if !selects(v.Spec.Selector) {
				fail("PodDisruptionBudget/%s: selector matches no pod template", v.Name)
			}
		case *networkingv1.NetworkPolicy:
			if !selects(&v.Spec.PodSelector) {
				fail("NetworkPolicy/%s: podSelector matches no pod template", v.Name)
			}
		case *monitoringv1.ServiceMonitor:
			checkServiceMonitor(v, services, scorerEnv, fail)
		}
	}

	maxByPartitions := int64(-1)
	if n, ok := partitions[patientsTopic]; ok {
		maxByPartitions = n
	} else if len(partitions) > 0 && patientsTopic != "" {
		fail("topic %q (SCORER_PATIENTS_TOPIC) has no KafkaTopic in --topics", patientsTopic)
	}
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *kedav1alpha1.ScaledObject:
			for _, err := range []error{kedav1alpha1.CheckReplicaCountBoundsAreValid(v),
				kedav1alpha1.CheckFallbackValid(v), kedav1alpha1.ValidateTriggers(v.Spec.Triggers)} {
				if err != nil {
					fail("ScaledObject/%s: keda: %v", v.Name, err)
				}
			}
			checkScaledObject(v, deployments, maxByPartitions, fail)
		case *autoscalingv2.HorizontalPodAutoscaler:
			if _, ok := deployments[v.Spec.ScaleTargetRef.Name]; !ok {
				fail("HorizontalPodAutoscaler/%s: scaleTargetRef %q is not a Deployment here", v.Name, v.Spec.ScaleTargetRef.Name)
			}
			if v.Spec.MinReplicas == nil || *v.Spec.MinReplicas < 1 {
				fail("HorizontalPodAutoscaler/%s: minReplicas must be >= 1", v.Name)
			}
			if maxByPartitions > 0 && int64(v.Spec.MaxReplicas) > maxByPartitions {
				fail("HorizontalPodAutoscaler/%s: maxReplicas %d exceeds the %d partitions of %q", v.Name, v.Spec.MaxReplicas, maxByPartitions, patientsTopic)
			}
		}
	}
	return p
}

func checkPodSecurity(id string, spec *corev1.PodSpec, configMaps map[string]*corev1.ConfigMap, fail func(string, ...any)) {
	psc := spec.SecurityContext
	podNonRoot := psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
	podSeccomp := psc != nil && psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		fail("%s: automountServiceAccountToken must be false", id)
	}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		cid := fmt.Sprintf("%s container %s", id, c.Name)
		sc := c.SecurityContext
		if sc == nil {
			fail("%s: no securityContext", cid)
			continue
		}
		if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
			fail("%s: runAsNonRoot is not true", cid)
		}
		if !podSeccomp && (sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
			fail("%s: seccompProfile is not RuntimeDefault", cid)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			fail("%s: readOnlyRootFilesystem is not true", cid)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			fail("%s: allowPrivilegeEscalation is not false", cid)
		}
		if sc.Privileged != nil && *sc.Privileged {
			fail("%s: privileged", cid)
		}
		if sc.Capabilities == nil || !containsCap(sc.Capabilities.Drop, "ALL") {
			fail("%s: capabilities do not drop ALL", cid)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				fail("%s: no %s request", cid, r)
			}
		}
		if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
			fail("%s: no memory limit", cid)
		}
		if !regexp.MustCompile(`^[^:@]+(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$`).MatchString(c.Image) ||
			strings.HasSuffix(c.Image, ":latest") {
			fail("%s: image %q must carry a tag other than latest (or a digest)", cid, c.Image)
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil {
				if _, ok := configMaps[ef.ConfigMapRef.Name]; !ok {
					fail("%s: envFrom ConfigMap %q is not in this bundle", cid, ef.ConfigMapRef.Name)
				}
			}
		}
	}
}

// secretFiles are the variables that name a file from a Secret: each must lie in a mounted volume.
var secretFiles = []string{"KAFKA_SSL_CA_LOCATION", "SCORER_HTTP_TLS_CERT", "SCORER_HTTP_TLS_KEY", "SCORER_HTTP_AUTH_TOKEN_FILE"}

var pathVariable = regexp.MustCompile(`(_FILE|_LOCATION|_TLS_CERT|_TLS_KEY)$`)

// checkSecretFiles: a file named by a container's environment is in a volume mounted as a
// directory. A subPath mount is never updated, so a rotated Secret would not reach the pod.
func checkSecretFiles(id string, spec *corev1.PodSpec, configMaps map[string]*corev1.ConfigMap, fail func(string, ...any)) {
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		env := envOf(&corev1.PodSpec{Containers: []corev1.Container{c}}, configMaps)
		for name, path := range env {
			if !pathVariable.MatchString(name) || !strings.HasPrefix(path, "/") {
				continue
			}
			var mount *corev1.VolumeMount
			for i := range c.VolumeMounts {
				m := &c.VolumeMounts[i]
				mp := strings.TrimSuffix(m.MountPath, "/")
				if (path == mp || strings.HasPrefix(path, mp+"/")) && (mount == nil || len(mp) > len(mount.MountPath)) {
					mount = m
				}
			}
			switch {
			case mount == nil && contains(secretFiles, name):
				fail("%s container %s: %s=%s is in no mounted volume", id, c.Name, name, path)
			case mount != nil && mount.SubPath != "":
				fail("%s container %s: %s=%s is mounted with subPath %q; mount the Secret as a directory so rotation reaches the pod",
					id, c.Name, name, path, mount.SubPath)
			}
		}
	}
}

func checkScorer(d *appsv1.Deployment, env map[string]string, drainMS int64, fail func(string, ...any)) {
	spec := &d.Spec.Template.Spec
	if d.Spec.Replicas != nil {
		fail("Deployment/%s: spec.replicas is set; the autoscaler owns it", d.Name)
	}
	var scorer *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == "scorer" {
			scorer = &spec.Containers[i]
		}
	}
	if scorer == nil {
		fail("Deployment/%s: no container named scorer", d.Name)
		return
	}
	httpPort := false
	for _, p := range scorer.Ports {
		if p.Name == "http" && p.ContainerPort == 8080 {
			httpPort = true
		}
	}
	if !httpPort {
		fail("Deployment/%s: scorer has no port named http on 8080 (SCORER_HTTP_ADDR)", d.Name)
	}
	probe := func(kind string, pr *corev1.Probe, path string) {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != path ||
			(pr.HTTPGet.Port.String() != "http" && pr.HTTPGet.Port.IntValue() != 8080) {
			fail("Deployment/%s: %s must be an httpGet of %s on the sidecar port", d.Name, kind, path)
		}
	}
	probe("livenessProbe", scorer.LivenessProbe, "/healthz")
	probe("readinessProbe", scorer.ReadinessProbe, "/readyz")
	// With TLS on the sidecar the kubelet must speak HTTPS to it (it does not verify the
	// certificate); it cannot send a bearer token, so the health routes stay open.
	tls := env["SCORER_HTTP_TLS_CERT"] != ""
	if tls != (env["SCORER_HTTP_TLS_KEY"] != "") {
		fail("Deployment/%s: SCORER_HTTP_TLS_CERT and SCORER_HTTP_TLS_KEY must be set together", d.Name)
	}
	want := corev1.URISchemeHTTP
	if tls {
		want = corev1.URISchemeHTTPS
	}
	for _, p := range []struct {
		kind string
		pr   *corev1.Probe
	}{{"livenessProbe", scorer.LivenessProbe}, {"readinessProbe", scorer.ReadinessProbe}} {
		if p.pr == nil || p.pr.HTTPGet == nil {
			continue
		}
		scheme := p.pr.HTTPGet.Scheme
		if scheme == "" {
			scheme = corev1.URISchemeHTTP
		}
		if scheme != want {
			fail("Deployment/%s: %s uses %s but the sidecar serves %s (SCORER_HTTP_TLS_CERT)", d.Name, p.kind, scheme, want)
		}
	}
	if env["SCORER_HTTP_AUTH_TOKEN_FILE"] != "" && env["SCORER_HTTP_AUTH_HEALTH"] == "true" {
		fail("Deployment/%s: SCORER_HTTP_AUTH_HEALTH=true, but the kubelet's probes cannot send a bearer token", d.Name)
	}
	grace := int64(30)
	if spec.TerminationGracePeriodSeconds != nil {
		grace = *spec.TerminationGracePeriodSeconds
	}
	preStop := int64(0)
	if scorer.Lifecycle != nil && scorer.Lifecycle.PreStop != nil && scorer.Lifecycle.PreStop.Sleep != nil {
		preStop = scorer.Lifecycle.PreStop.Sleep.Seconds
	}
	if drainMS >= 0 && grace*1000 <= drainMS+preStop*1000 {
		fail("Deployment/%s: terminationGracePeriodSeconds %d is not above preStop %ds + SCORER_DRAIN_TIMEOUT_MS %dms",
			d.Name, grace, preStop, drainMS)
	}
}

func checkScaledObject(so *kedav1alpha1.ScaledObject, deployments map[string]*appsv1.Deployment, maxByPartitions int64, fail func(string, ...any)) {
	if so.Spec.ScaleTargetRef == nil {
		fail("ScaledObject/%s: no scaleTargetRef", so.Name)
		return
	}
	if _, ok := deployments[so.Spec.ScaleTargetRef.Name]; !ok {
		fail("ScaledObject/%s: scaleTargetRef %q is not a Deployment here", so.Name, so.Spec.ScaleTargetRef.Name)
	}
	if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
		fail("ScaledObject/%s: minReplicaCount must be >= 1 (the /predict sidecar stays up)", so.Name)
	}
	if so.Spec.MaxReplicaCount == nil {
		fail("ScaledObject/%s: maxReplicaCount must be set (<= partitions)", so.Name)
	} else if maxByPartitions > 0 && int64(*so.Spec.MaxReplicaCount) > maxByPartitions {
		fail("ScaledObject/%s: maxReplicaCount %d exceeds the %d partitions of the patients topic", so.Name, *so.Spec.MaxReplicaCount, maxByPartitions)
	}
	kafka := false
	for _, t := range so.Spec.Triggers {
		if t.Type != "kafka" {
			continue
		}
		kafka = true
		for _, key := range []string{"lagThreshold"} {
			if n, err := strconv.Atoi(t.Metadata[key]); err != nil || n < 1 {
				fail("ScaledObject/%s: kafka trigger %s must be a positive integer", so.Name, key)
			}
		}
		for _, pair := range [][2]string{{"bootstrapServers", "bootstrapServersFromEnv"},
			{"consumerGroup", "consumerGroupFromEnv"}, {"topic", "topicFromEnv"}} {
			if t.Metadata[pair[0]] == "" && t.Metadata[pair[1]] == "" {
				fail("ScaledObject/%s: kafka trigger needs %s or %s", so.Name, pair[0], pair[1])
			}
		}
		if t.Metadata["allowIdleConsumers"] == "true" {
			fail("ScaledObject/%s: allowIdleConsumers would scale past the partition count", so.Name)
		}
	}
	if !kafka {
		fail("ScaledObject/%s: no kafka trigger", so.Name)
	}
}

func checkServiceMonitor(sm *monitoringv1.ServiceMonitor, services map[string]*corev1.Service, scorerEnv map[string]string, fail func(string, ...any)) {
	tls := scorerEnv["SCORER_HTTP_TLS_CERT"] != ""
	protected := scorerEnv["SCORER_HTTP_AUTH_TOKEN_FILE"] != "" && scorerEnv["SCORER_HTTP_AUTH_METRICS"] == "true"
	for _, ep := range sm.Spec.Endpoints {
		scheme := ep.Scheme.String()
		switch {
		case scheme != "" && scheme != "http" && scheme != "https":
			fail("ServiceMonitor/%s: endpoint scheme %q is neither http nor https", sm.Name, scheme)
		case tls && scheme != "https":
			fail("ServiceMonitor/%s: the sidecar serves TLS (SCORER_HTTP_TLS_CERT) but the endpoint scheme is %q", sm.Name, scheme)
		case tls && ep.TLSConfig == nil:
			fail("ServiceMonitor/%s: the sidecar serves TLS but the endpoint has no tlsConfig (CA, serverName)", sm.Name)
		case !tls && scheme == "https":
			fail("ServiceMonitor/%s: endpoint scheme https, but the sidecar serves plain HTTP", sm.Name)
		}
		if protected && ep.Authorization == nil && ep.BearerTokenSecret == nil {
			fail("ServiceMonitor/%s: /metrics needs a bearer token (SCORER_HTTP_AUTH_METRICS) but the endpoint sends none", sm.Name)
		}
		if ep.Authorization != nil && ep.Authorization.Credentials == nil {
			fail("ServiceMonitor/%s: authorization has no credentials Secret", sm.Name)
		}
		if err := ep.HTTPConfigWithProxyAndTLSFiles.Validate(); err != nil {
			fail("ServiceMonitor/%s: %v", sm.Name, err)
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		fail("ServiceMonitor/%s: %v", sm.Name, err)
		return
	}
	for _, svc := range services {
		if !sel.Matches(labels.Set(svc.Labels)) {
			continue
		}
		for _, ep := range sm.Spec.Endpoints {
			found := false
			for _, port := range svc.Spec.Ports {
				if port.Name == ep.Port {
					found = true
				}
			}
			if !found {
				fail("ServiceMonitor/%s: endpoint port %q is not a port of Service/%s", sm.Name, ep.Port, svc.Name)
			}
		}
		return
	}
	fail("ServiceMonitor/%s: selector matches no Service", sm.Name)
}

// envOf resolves a pod's first container environment from env and envFrom ConfigMaps.
func envOf(spec *corev1.PodSpec, configMaps map[string]*corev1.ConfigMap) map[string]string {
	env := map[string]string{}
	if len(spec.Containers) == 0 {
		return env
	}
	c := spec.Containers[0]
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			if cm, ok := configMaps[ef.ConfigMapRef.Name]; ok {
				for k, v := range cm.Data {
					env[k] = v
				}
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	return env
}

func readPartitions(file string) (map[string]int64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	docs, err := splitDocuments(data)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, doc := range docs {
		var t struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				TopicName  string `json:"topicName"`
				Partitions int64  `json:"partitions"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &t); err != nil {
			return nil, err
		}
		if t.Kind != "KafkaTopic" {
			continue
		}
		name := t.Spec.TopicName
		if name == "" {
			name = t.Metadata.Name
		}
		out[name] = t.Spec.Partitions
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func containsCap(caps []corev1.Capability, c corev1.Capability) bool {
	for _, v := range caps {
		if v == c {
			return true
		}
	}
	return false
}

func stripComments(doc []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
