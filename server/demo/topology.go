package demo

import (
	"fmt"
	"hash/fnv"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
)

// service is one deployment of the demo shop. Scopes are the instrumentation libraries its language's
// OpenTelemetry distribution would report, so the data looks like it came from real SDKs.
type service struct {
	name    string
	version string // baseline; incidents may deploy another
	lang    string
	pods    int
	port    int
	scopes  scopes
	app     *commonpb.InstrumentationScope // the service's own tracer: internal and GenAI spans
}

type scopes struct {
	server, client, postgres, redis, kafka *commonpb.InstrumentationScope
}

func scope(name, version string) *commonpb.InstrumentationScope {
	return &commonpb.InstrumentationScope{Name: name, Version: version}
}

var languages = map[string]struct {
	sdkVersion string
	scopes     scopes
}{
	"go": {"1.38.0", scopes{
		server:   scope("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "0.63.0"),
		client:   scope("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "0.63.0"),
		postgres: scope("github.com/exaring/otelpgx", "0.9.3"),
		redis:    scope("github.com/redis/go-redis/extra/redisotel", "9.14.0"),
		kafka:    scope("github.com/twmb/franz-go/plugin/kotel", "1.6.0"),
	}},
	"java": {"1.54.1", scopes{
		server:   scope("io.opentelemetry.spring-webmvc-6.0", "2.20.1-alpha"),
		client:   scope("io.opentelemetry.java-http-client", "2.20.1"),
		postgres: scope("io.opentelemetry.jdbc", "2.20.1-alpha"),
		redis:    scope("io.opentelemetry.lettuce-5.1", "2.20.1-alpha"),
		kafka:    scope("io.opentelemetry.kafka-clients-2.6", "2.20.1-alpha"),
	}},
	"python": {"1.37.0", scopes{
		server:   scope("opentelemetry.instrumentation.fastapi", "0.58b0"),
		client:   scope("opentelemetry.instrumentation.httpx", "0.58b0"),
		postgres: scope("opentelemetry.instrumentation.asyncpg", "0.58b0"),
		redis:    scope("opentelemetry.instrumentation.redis", "0.58b0"),
	}},
	"nodejs": {"2.1.0", scopes{
		server: scope("@opentelemetry/instrumentation-http", "0.205.0"),
		client: scope("@opentelemetry/instrumentation-undici", "0.16.0"),
	}},
}

func newService(name, version, lang string, pods, port int) *service {
	return &service{name: name, version: version, lang: lang, pods: pods, port: port,
		scopes: languages[lang].scopes, app: scope(name, version)}
}

var (
	frontend       = newService("frontend", "5.12.0", "nodejs", 3, 3000)
	gateway        = newService("api-gateway", "1.8.2", "go", 3, 8080)
	checkout       = newService("checkout-service", "3.1.0", "java", 2, 8080)
	payment        = newService("payment-service", paymentGoodVersion, "go", 2, 8080)
	inventory      = newService("inventory-service", "1.14.3", "java", 3, 8080)
	users          = newService("user-service", "4.2.0", "python", 2, 8000)
	recommendation = newService("recommendation-service", "0.9.4", "python", 2, 8000)
	llmGateway     = newService("llm-gateway", "1.2.0", "go", 2, 8080)
	search         = newService("search-service", "2.0.1", "go", 2, 8080)
	assistant      = newService("support-assistant", "0.4.2", "python", 2, 8000)
	activity       = newService("activity-service", "1.3.0", "java", 2, 8080) // consumes the activity topic
)

// activityTopic is the Kafka topic api-gateway publishes product views and cart additions to.
const activityTopic = "user-activity"

const (
	paymentGoodVersion = "2.3.1"
	paymentBadVersion  = "2.4.0"
)

// resource is one pod of one version of a service: what an SDK reports as its Resource.
type resource struct {
	svc     *service
	version string
	host    string
	pb      *resourcepb.Resource
}

// resources caches resources by service, version and pod, so all spans of a pod share one Resource.
type resources map[resourceKey]*resource

type resourceKey struct {
	svc     *service
	version string
	pod     int
}

func (rs resources) get(svc *service, version string, pod int) *resource {
	k := resourceKey{svc, version, pod}
	if r, ok := rs[k]; ok {
		return r
	}
	// A new version is a new ReplicaSet, so its pods get new names, as in Kubernetes.
	host := fmt.Sprintf("%s-%s-%s", svc.name, podHash(svc.name+"@"+version, 10), podHash(fmt.Sprint(svc.name, version, pod), 5))
	r := &resource{svc: svc, version: version, host: host, pb: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
		str("service.name", svc.name),
		str("service.version", version),
		str("service.namespace", "shop"),
		str("service.instance.id", host),
		str("host.name", host),
		str("k8s.pod.name", host),
		str("k8s.namespace.name", "shop"),
		str("deployment.environment", "demo"),
		str("deployment.environment.name", "demo"),
		str("telemetry.sdk.name", "opentelemetry"),
		str("telemetry.sdk.language", svc.lang),
		str("telemetry.sdk.version", languages[svc.lang].sdkVersion),
	}}}
	rs[k] = r
	return r
}

// podHash derives Kubernetes-looking name suffixes from a stable hash, independent of the seed.
func podHash(s string, n int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	h := fnv.New64a()
	h.Write([]byte(s))
	v := h.Sum64()
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[v%uint64(len(alphabet))]
		v /= uint64(len(alphabet))
		if v == 0 {
			v = h.Sum64() + uint64(i)*0x9e3779b97f4a7c15
		}
	}
	return string(b)
}

// database is a database server a service connects to.
type database struct {
	system string // db.system: postgresql or redis
	host   string
	port   int
	name   string // db.namespace
}

var (
	checkoutDB       = &database{"postgresql", "checkout-db.shop.svc", 5432, "checkout"}
	paymentsDB       = &database{"postgresql", "payments-db.shop.svc", 5432, "payments"}
	inventoryPrimary = &database{"postgresql", "inventory-db-primary.shop.svc", 5432, "inventory"}
	inventoryReplica = &database{"postgresql", "inventory-db-replica.shop.svc", 5432, "inventory"}
	usersDB          = &database{"postgresql", "users-db.shop.svc", 5432, "users"}
	catalogDB        = &database{"postgresql", "catalog-db.shop.svc", 5432, "catalog"}
	assistantDB      = &database{"postgresql", "assistant-db.shop.svc", 5432, "assistant"}
	sessionRedis     = &database{"redis", "redis-sessions.shop.svc", 6379, "0"}
	cacheRedis       = &database{"redis", "redis-cache.shop.svc", 6379, "0"}
	cartRedis        = &database{"redis", "redis-cart.shop.svc", 6379, "1"}
)

// model is a language model and how fast it answers.
type model struct {
	name          string // gen_ai.request.model
	responseModel string // gen_ai.response.model: providers answer with a dated snapshot
	provider      string // gen_ai.provider.name
	host          string
	port          int
	embeddings    bool
	firstToken    float64 // median milliseconds to the first token
	perToken      float64 // milliseconds per output token
}

// Provider names follow the GenAI semantic conventions; llama runs on our own vLLM and has no list
// price, so its cost is unknown by design.
var (
	gpt4o      = &model{"gpt-4o", "gpt-4o-2024-08-06", "openai", "api.openai.com", 443, false, 450, 11}
	gpt4oMini  = &model{"gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai", "api.openai.com", 443, false, 300, 7}
	sonnet     = &model{"claude-sonnet-4", "claude-sonnet-4-20250514", "anthropic", "api.anthropic.com", 443, false, 700, 14}
	haiku      = &model{"claude-3-5-haiku", "claude-3-5-haiku-20241022", "anthropic", "api.anthropic.com", 443, false, 350, 6}
	gemini     = &model{"gemini-2.0-flash", "gemini-2.0-flash-001", "gcp.gemini", "generativelanguage.googleapis.com", 443, false, 300, 4}
	embedSmall = &model{"text-embedding-3-small", "text-embedding-3-small", "openai", "api.openai.com", 443, true, 90, 0}
	llama      = &model{"llama-3.1-70b-instruct", "meta-llama/Llama-3.1-70B-Instruct", "vllm", "vllm.ml.svc", 8000, false, 180, 22}
)
