"""deploy/kubernetes/base/: the Kubernetes objects of the stack, rendered from config/stack.kube.yaml.

Why rendered and committed, not written by hand: every port, host, path and limit of these
objects is one of the stack description's (config/stack.kube.yaml extends the compose stack,
which extends config/stack.yaml), so a port moved there moves here at the next render, and a
unit test fails while the committed folder is stale, as for compose/rendered/. The overlays
(deploy/kubernetes/overlays/) are hand-written and patch no port.

What mirrors what (docs/kubernetes.md): each colour is a Deployment behind a ClusterIP Service,
with /ping readiness, a preStop drain, a PodDisruptionBudget and an HPA on the production load
signal; Nginx is the edge (the compose image and its rendered config, with a bounded keep-alive
lifetime so that connections follow the Service's endpoints); compose's networks become
NetworkPolicies; its named volumes PersistentVolumeClaims.

    twinserve render-kube
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from twinserve.compose.configs import ComposeSettings, nginx_conf
from twinserve.compose.configs import load as load_compose
from twinserve.errors import ConfigError
from twinserve.runtime.render import PROMETHEUS_RULES
from twinserve.settings import Stack, _section, project_dir, read_raw

KUBE_STACK = Path("config", "stack.kube.yaml")  # in the project directory
BASE_DIR = Path("deploy", "kubernetes", "base")
HEADER = "# Rendered by `twinserve render-kube` from {source}; do not edit.\n"
PART_OF = {"app.kubernetes.io/part-of": "twinserve"}
COLOUR_LABEL = "twinserve.io/colour"
NGINX_CONF_DIR = "/etc/twinserve/kube"  # where the edge mounts its ConfigMap (the image's own conf stays unused)
LOAD_METRIC = "twinserve_production_requests_per_second"  # prometheus-adapter's external metric, per colour
CLUSTER_KINDS = ("Namespace", "ClusterRole", "ClusterRoleBinding", "APIService")  # objects of no namespace


@dataclass(frozen=True)
class Sized:
    """Resources of one kind of pod, and its replicas where the manifests fix them."""

    requests: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)
    replicas: int = 1
    min_replicas: int = 1
    max_replicas: int = 1
    target_rps_per_replica: int = 0
    retention: str = ""


@dataclass(frozen=True)
class KubeSettings:
    namespace: str
    images: dict
    adapter_port: int
    drain_seconds: int
    upstream_keepalive_seconds: int
    torchserve: Sized
    edge: Sized
    prometheus: Sized
    storage: dict


def load(path: Path | None = None) -> tuple[Stack, ComposeSettings, KubeSettings]:
    """The Kubernetes stack (default: the project's config/stack.kube.yaml) and its `kube:` settings."""
    path = path or project_dir() / KUBE_STACK
    stack, compose = load_compose(path)
    raw = dict(read_raw(path).get("kube") or {})
    for kind in ("torchserve", "edge", "prometheus"):
        raw[kind] = _section(Sized, raw.get(kind) or {}, f"{path}: kube.{kind}")
    kube = _section(KubeSettings, raw, f"{path}: kube")
    if set(kube.images) != {"twinserve", "nginx", "monitoring", "adapter"}:
        raise ConfigError(
            f"{path}: kube.images must name twinserve, nginx, monitoring and adapter, got {sorted(kube.images)}"
        )
    if kube.adapter_port in stack.ports:
        raise ConfigError(f"{path}: kube.adapter_port {kube.adapter_port} is already a stack port")
    if kube.drain_seconds <= kube.upstream_keepalive_seconds:
        raise ConfigError(
            f"{path}: kube.drain_seconds ({kube.drain_seconds}) must exceed kube.upstream_keepalive_seconds "
            f"({kube.upstream_keepalive_seconds}): a leaving pod must outlive Nginx's connections to it"
        )
    ts = kube.torchserve
    if not 1 <= ts.min_replicas <= ts.max_replicas or ts.target_rps_per_replica <= 0:
        raise ConfigError(f"{path}: kube.torchserve needs 1 <= min_replicas <= max_replicas and a positive target")
    if {"state", "model_store", "prometheus"} - set(kube.storage):
        raise ConfigError(f"{path}: kube.storage needs state, model_store and prometheus sizes")
    return stack, compose, kube


def labels(name: str, **extra: str) -> dict:
    return {"app.kubernetes.io/name": name, **PART_OF, **extra}


def meta(name: str, app: str, **extra: str) -> dict:
    return {"name": name, "labels": labels(app, **extra)}


def colour_name(colour: str) -> str:
    return f"torchserve-{colour}"


def colour_selector(colour: str) -> dict:
    return {"app.kubernetes.io/name": "torchserve", COLOUR_LABEL: colour}


def resources(sized: Sized) -> dict:
    return {"requests": dict(sized.requests), "limits": dict(sized.limits)}


def claim(name: str, size: str, kube: KubeSettings, mode: str = "ReadWriteMany") -> dict:
    spec = {"accessModes": [mode], "resources": {"requests": {"storage": size}}}
    if kube.storage.get("class"):
        spec["storageClassName"] = kube.storage["class"]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(name, "twinserve"), "spec": spec}


def twinserve_env(stack: Stack, **extra: str) -> list[dict]:
    """compose/twinserve.env's variables, with the Kubernetes stack description."""
    env = {"TWINSERVE_STACK": f"/twinserve/{KUBE_STACK}", "PYTHONPATH": "/twinserve", "PYTHONUNBUFFERED": "1", **extra}
    return [{"name": k, "value": v} for k, v in env.items()]


def state_volumes(stack: Stack, writable: bool) -> tuple[list[dict], list[dict]]:
    """(volumes, mounts) of the state and the archives, where compose mounts them; read-only unless `writable`."""
    volumes = [
        {"name": "state", "persistentVolumeClaim": {"claimName": "state", "readOnly": not writable}},
        {"name": "model-store", "persistentVolumeClaim": {"claimName": "model-store", "readOnly": not writable}},
    ]
    mounts = [
        {"name": "state", "mountPath": str(stack.state_dir), "readOnly": not writable},
        {"name": "model-store", "mountPath": str(stack.model_store), "readOnly": not writable},
    ]
    return volumes, mounts


def torchserve_objects(stack: Stack, kube: KubeSettings, colour: str) -> list[dict]:
    """A colour: its Deployment, Service, PodDisruptionBudget and HorizontalPodAutoscaler."""
    c, name, ts = stack.colours[colour], colour_name(colour), kube.torchserve
    selector = colour_selector(colour)
    ports = {"inference": c.inference_port, "management": c.management_port, "metrics": c.metrics_port}
    volumes, mounts = state_volumes(stack, writable=False)
    period = 5
    container = {
        "name": "torchserve",
        "image": kube.images["twinserve"],
        "command": ["python", "-m", "twinserve", "container", "torchserve"],
        "workingDir": "/twinserve",
        "env": twinserve_env(stack, TWINSERVE_COLOUR=colour),
        "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports.items()],
        # TorchServe loads every version the state gives its colour before its inference port answers;
        # /ping is 200 only while each has its workers: the pod joins the Service's endpoints then.
        "startupProbe": {
            "httpGet": {"path": "/ping", "port": "inference"},
            "periodSeconds": period,
            "failureThreshold": -(-stack.torchserve.start_timeout_seconds // period),
        },
        "readinessProbe": {
            "httpGet": {"path": "/ping", "port": "inference"},
            "periodSeconds": period,
            "failureThreshold": 2,
            "timeoutSeconds": 3,
        },  # fmt: skip
        # The frontend alive, not its workers: a worker that died is TorchServe's to restart (readiness
        # takes the pod out meanwhile); killing the JVM for it would drop the whole queue.
        "livenessProbe": {"tcpSocket": {"port": "management"}, "periodSeconds": 10, "failureThreshold": 3},
        # Out of the endpoints first, then stopped: see kube.drain_seconds.
        "lifecycle": {"preStop": {"sleep": {"seconds": kube.drain_seconds}}},
        "resources": resources(ts),
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 1000},
        "volumeMounts": [{"name": "var", "mountPath": str(stack.var_dir)}, *mounts],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, "torchserve", **{COLOUR_LABEL: colour}),
        "spec": {  # no replicas: the HPA owns them (an apply would reset a fixed count)
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels("torchserve", **{COLOUR_LABEL: colour})},
                "spec": {
                    # The drain, then the longest request TorchServe may still be answering, then a margin.
                    "terminationGracePeriodSeconds": kube.drain_seconds + stack.torchserve.response_timeout + 10,
                    "containers": [container],
                    "volumes": [{"name": "var", "emptyDir": {}}, *volumes],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, "torchserve", **{COLOUR_LABEL: colour}),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                {"name": n, "port": p, "targetPort": n, "protocol": "TCP"} for n, p in ports.items() if n != "metrics"
            ],  # fmt: skip  (Prometheus scrapes each pod, not the Service)
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(name, "torchserve", **{COLOUR_LABEL: colour}),
        # A voluntary eviction (a node drain) never takes the colour's last ready pod; a pod that is
        # not ready anyway may go, so a crash-looping pod does not block a drain.
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}, "unhealthyPodEvictionPolicy": "AlwaysAllow"},
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(name, "torchserve", **{COLOUR_LABEL: colour}),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": ts.min_replicas,
            "maxReplicas": ts.max_replicas,
            # Production requests through Nginx to this colour: the staging colour gets none and idles at
            # min_replicas; a swap moves the load, and with it the replicas. twinserve decides the colour,
            # the HPA the count.
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": LOAD_METRIC, "selector": {"matchLabels": {"colour": colour}}},
                        "target": {"type": "AverageValue", "averageValue": str(ts.target_rps_per_replica)},
                    },
                }
            ],  # fmt: skip
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}],
                },  # fmt: skip
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                },  # fmt: skip
            },
        },
    }
    return [deployment, service, pdb, hpa]


def edge_conf(stack: Stack, kube: KubeSettings) -> str:
    """compose's rendered nginx.conf, with each colour's upstream keep-alive connections closed after
    kube.upstream_keepalive_seconds (Nginx's keepalive_time): the Service's ClusterIP never changes, so
    only a new connection reaches a new pod or leaves a terminating one."""
    conf, count = re.subn(
        r"(upstream (\w+) \{\n(?:[^}]*\n)*?(\s*)keepalive \d+;\n)",
        rf"\1\3keepalive_time {kube.upstream_keepalive_seconds}s;\n",
        nginx_conf(stack),
    )
    if count != len(stack.colours):
        raise ConfigError(f"nginx.conf: {count} upstream keepalive lines for {len(stack.colours)} colours")
    return conf


def edge_objects(stack: Stack, kube: KubeSettings) -> list[dict]:
    """Nginx: its ConfigMap, Deployment and Service (the public port; the admin port for the control plane
    and Prometheus, which the NetworkPolicy narrows)."""
    n, app = stack.nginx, "edge"
    volumes, mounts = state_volumes(stack, writable=False)
    conf_file = f"{NGINX_CONF_DIR}/nginx.conf"
    container = {
        "name": "nginx",
        "image": kube.images["nginx"],
        "command": ["nginx", "-c", conf_file, "-g", "daemon off;"],
        "ports": [
            {"name": "http", "containerPort": n.port, "protocol": "TCP"},
            {"name": "admin", "containerPort": n.admin_port, "protocol": "TCP"},
        ],  # fmt: skip
        # The admin server allows loopback and the control plane only; the kubelet probes from the node.
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": "admin"}, "periodSeconds": 10, "failureThreshold": 3},
        # Out of the Service's endpoints before the image's STOPSIGNAL (SIGQUIT) lets requests finish.
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "resources": resources(kube.edge),
        "volumeMounts": [
            {"name": "conf", "mountPath": NGINX_CONF_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": str(stack.var_dir / "nginx" / "tmp")},
            {"name": "logs", "mountPath": str(stack.var_dir / "logs")},
            mounts[0],  # the state: each model's production colour and the admin token, read at start
        ],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("edge-nginx", app),
            "data": {"nginx.conf": edge_conf(stack, kube)},
        },  # fmt: skip
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(app, app),
            "spec": {
                "replicas": kube.edge.replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
                "template": {
                    "metadata": {"labels": labels(app)},
                    "spec": {
                        "terminationGracePeriodSeconds": 5 + stack.nginx.timeout_seconds + 5,
                        "containers": [container],
                        "volumes": [
                            {"name": "conf", "configMap": {"name": "edge-nginx"}},
                            {"name": "tmp", "emptyDir": {}},
                            {"name": "logs", "emptyDir": {}},
                            volumes[0],
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(app, app),
            "spec": {
                "type": "ClusterIP",  # an overlay makes it a LoadBalancer or puts an Ingress before it
                "selector": {"app.kubernetes.io/name": app},
                "ports": [
                    {"name": "http", "port": n.port, "targetPort": "http", "protocol": "TCP"},
                    {"name": "admin", "port": n.admin_port, "targetPort": "admin", "protocol": "TCP"},
                ],
            },  # fmt: skip
        },
    ]


def prometheus_yml(stack: Stack, kube: KubeSettings, compose: ComposeSettings) -> dict:
    """Prometheus' configuration: each colour pod and each edge pod found through the API (role pod), so
    that every replica is scraped, not one per Service; the rules are the native ones."""
    mon = stack.monitoring

    def pods(job: str, app: str, port: str, path: str = "/metrics") -> dict:
        return {
            "job_name": job,
            "metrics_path": path,
            "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [kube.namespace]}}],
            "relabel_configs": [
                {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name",
                                   "__meta_kubernetes_pod_container_port_name"],
                 "regex": f"{app};{port}", "action": "keep"},
                {"source_labels": ["__meta_kubernetes_pod_label_twinserve_io_colour"], "target_label": "colour"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            ],
        }  # fmt: skip

    return {
        "global": {
            "scrape_interval": f"{mon.scrape_interval_seconds}s",
            "evaluation_interval": f"{mon.scrape_interval_seconds}s",
        },  # fmt: skip
        "rule_files": [f"{compose.prometheus_rules}/*.yml"],
        "scrape_configs": [
            pods("torchserve", "torchserve", "metrics"),
            pods("nginx", "edge", "admin"),
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{mon.prometheus_port}"]}]},
        ],
    }


def rules(stack: Stack) -> dict[str, str]:
    """{file: text} of config/prometheus/rules: the native alert and recording rules, unchanged."""
    return {p.name: p.read_text() for p in sorted((stack.project / PROMETHEUS_RULES).glob("*.yml"))}


def prometheus_objects(stack: Stack, kube: KubeSettings, compose: ComposeSettings) -> list[dict]:
    port, app = stack.monitoring.prometheus_port, "prometheus"
    container = {
        "name": "prometheus",
        "image": kube.images["monitoring"],
        "command": ["prometheus", "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
                    f"--storage.tsdb.retention.time={kube.prometheus.retention}", f"--web.listen-address=:{port}"],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/-/ready", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/-/healthy", "port": "http"}, "periodSeconds": 10},
        "resources": resources(kube.prometheus),
        "volumeMounts": [{"name": "config", "mountPath": "/etc/prometheus/prometheus.yml", "subPath": "prometheus.yml"},
                         {"name": "rules", "mountPath": compose.prometheus_rules},
                         {"name": "data", "mountPath": "/prometheus"}],
    }  # fmt: skip
    config = yaml.safe_dump(prometheus_yml(stack, kube, compose), sort_keys=False)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(app, app)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(app, app),
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(app, app),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": app},
         "subjects": [{"kind": "ServiceAccount", "name": app, "namespace": kube.namespace}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("prometheus-config", app),
         "data": {"prometheus.yml": config}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("prometheus-rules", app), "data": rules(stack)},
        claim("prometheus-data", kube.storage["prometheus"], kube, mode="ReadWriteOnce"),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(app, app),
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # one writer of its data volume
                "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
                "template": {
                    "metadata": {"labels": labels(app)},
                    "spec": {
                        "serviceAccountName": app,
                        "containers": [container],
                        "volumes": [{"name": "config", "configMap": {"name": "prometheus-config"}},
                                    {"name": "rules", "configMap": {"name": "prometheus-rules"}},
                                    {"name": "data", "persistentVolumeClaim": {"claimName": "prometheus-data"}}],
                    },
                },
            },
        },
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(app, app),
         "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": app},
                  "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]}},
    ]  # fmt: skip


def adapter_config(stack: Stack, kube: KubeSettings) -> dict:
    """prometheus-adapter's rules: the external metric the HPAs read, production requests per second
    through Nginx by colour (the selector of each HPA picks its colour)."""
    return {
        "externalRules": [{
            "seriesQuery": 'twinserve_http_requests_total{route="production"}',
            "resources": {"namespaced": False},
            "name": {"matches": "^twinserve_http_requests_total$", "as": LOAD_METRIC},
            "metricsQuery": 'sum by (colour) (rate(<<.Series>>{route="production",<<.LabelMatchers>>}[1m]))',
        }],
    }  # fmt: skip


def adapter_objects(stack: Stack, kube: KubeSettings) -> list[dict]:
    """prometheus-adapter, serving the external metrics API to the HPAs from Prometheus: its configuration,
    Deployment and Service, the APIService that registers it, and the RBAC its upstream manifests give it."""
    app, port, ns = "prometheus-adapter", kube.adapter_port, kube.namespace
    url = f"http://prometheus.{ns}.svc:{stack.monitoring.prometheus_port}"
    rbac = "rbac.authorization.k8s.io"
    me = [{"kind": "ServiceAccount", "name": app, "namespace": ns}]

    def binding(kind: str, name: str, role_kind: str, role: str, subjects=me, namespace=None) -> dict:
        metadata = meta(name, app) | ({"namespace": namespace} if namespace else {})
        return {"apiVersion": f"{rbac}/v1", "kind": kind, "metadata": metadata,
                "roleRef": {"apiGroup": rbac, "kind": role_kind, "name": role}, "subjects": subjects}  # fmt: skip

    container = {
        "name": app,
        "image": kube.images["adapter"],
        "args": ["--cert-dir=/tmp/cert", f"--secure-port={port}", f"--prometheus-url={url}",
                 "--config=/etc/adapter/config.yaml", "--metrics-relist-interval=1m"],
        "ports": [{"name": "https", "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"}, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/livez", "port": "https", "scheme": "HTTPS"}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 10001,
                            "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/adapter", "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }  # fmt: skip
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(app, app)},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{app}-config", app),
         "data": {"config.yaml": yaml.safe_dump(adapter_config(stack, kube), sort_keys=False)}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(app, app),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
                "template": {
                    "metadata": {"labels": labels(app)},
                    "spec": {"serviceAccountName": app, "containers": [container],
                             "volumes": [{"name": "config", "configMap": {"name": f"{app}-config"}},
                                         {"name": "tmp", "emptyDir": {}}]},
                },
            },
        },
        {"apiVersion": "v1", "kind": "Service", "metadata": meta(app, app),
         "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": app},
                  "ports": [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]}},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": meta("v1beta1.external.metrics.k8s.io", app),
         "spec": {"service": {"name": app, "namespace": ns, "port": 443}, "group": "external.metrics.k8s.io",
                  "version": "v1beta1", "insecureSkipTLSVerify": True,  # the adapter's self-signed certificate
                  "groupPriorityMinimum": 100, "versionPriority": 100}},
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRole", "metadata": meta(f"{app}-resource-reader", app),
         "rules": [{"apiGroups": [""], "resources": ["namespaces", "pods", "services"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRole", "metadata": meta("twinserve-external-metrics-reader", app),
         "rules": [{"apiGroups": ["external.metrics.k8s.io"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]},
        binding("ClusterRoleBinding", f"{app}-resource-reader", "ClusterRole", f"{app}-resource-reader"),
        binding("ClusterRoleBinding", f"{app}-auth-delegator", "ClusterRole", "system:auth-delegator"),
        binding("RoleBinding", f"{app}-auth-reader", "Role", "extension-apiserver-authentication-reader",
                namespace="kube-system"),
        # The HPA controller reads the external metrics.
        binding("ClusterRoleBinding", "twinserve-hpa-external-metrics", "ClusterRole",
                "twinserve-external-metrics-reader",
                subjects=[{"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler", "namespace": "kube-system"}]),
    ]  # fmt: skip


def peer(app: str) -> dict:
    return {"podSelector": {"matchLabels": {"app.kubernetes.io/name": app}}}


def policy(name: str, app: str, port: int, sources: list[dict] | None) -> dict:
    """Ingress to `app`'s pods on `port`, from `sources` only (None: from anywhere)."""
    rule = {"ports": [{"protocol": "TCP", "port": port}]}
    if sources is not None:
        rule["from"] = sources
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name, app),
        "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": app}},
                 "policyTypes": ["Ingress"], "ingress": [rule]},
    }  # fmt: skip


def network_policies(stack: Stack, kube: KubeSettings) -> list[dict]:
    """compose's networks, as policies: each API is reachable from the pods that need it, nothing else."""
    control, edge, prom = peer("control"), peer("edge"), peer("prometheus")
    policies = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("default-deny", "twinserve"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
        policy("edge-public", "edge", stack.nginx.port, None),
        policy("edge-admin", "edge", stack.nginx.admin_port, [control, prom]),
        policy("prometheus", "prometheus", stack.monitoring.prometheus_port, [peer("prometheus-adapter")]),
        policy("prometheus-adapter", "prometheus-adapter", kube.adapter_port, None),  # the API server calls it
    ]
    for colour, c in stack.colours.items():
        for api, port, sources in (("inference", c.inference_port, [edge, control]),
                                   ("management", c.management_port, [control]),
                                   ("metrics", c.metrics_port, [prom])):  # fmt: skip
            p = policy(f"{colour_name(colour)}-{api}", "torchserve", port, sources)
            p["spec"]["podSelector"]["matchLabels"][COLOUR_LABEL] = colour
            policies.append(p)
    return policies


def archives_job(stack: Stack, kube: KubeSettings) -> dict:
    """compose's `archives` service: the initial archives and state, once, before the colours can start."""
    volumes, mounts = state_volumes(stack, writable=True)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta("archives", "control"),
        "spec": {
            "backoffLimit": 2,
            "template": {
                "metadata": {"labels": labels("control")},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{
                        "name": "archives",
                        "image": kube.images["twinserve"],
                        "command": ["python", "-m", "twinserve", "container", "archives"],
                        "workingDir": "/twinserve",
                        "env": twinserve_env(stack),
                        "securityContext": {"runAsUser": 0},  # as compose's control plane: writes state and store
                        "volumeMounts": [{"name": "var", "mountPath": str(stack.var_dir)}, *mounts],
                    }],
                    "volumes": [{"name": "var", "emptyDir": {}}, *volumes],
                },
            },
        },
    }  # fmt: skip


def objects(stack: Stack, compose: ComposeSettings, kube: KubeSettings) -> dict[str, list[dict]]:
    """{file name in deploy/kubernetes/base/: its objects}."""
    files = {
        "storage.yaml": [
            claim("state", kube.storage["state"], kube),
            claim("model-store", kube.storage["model_store"], kube),
        ],  # fmt: skip
        "archives.yaml": [archives_job(stack, kube)],
    }
    for colour in stack.colours:
        files[f"{colour_name(colour)}.yaml"] = torchserve_objects(stack, kube, colour)
    files["edge.yaml"] = edge_objects(stack, kube)
    files["prometheus.yaml"] = prometheus_objects(stack, kube, compose)
    files["prometheus-adapter.yaml"] = adapter_objects(stack, kube)
    files["network-policies.yaml"] = network_policies(stack, kube)
    return files


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (nginx.conf, prometheus.yml, the rules) as literal blocks: readable in review."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _string)


def dump(docs: list[dict]) -> str:
    return "---\n".join(yaml.dump(d, Dumper=_Dumper, sort_keys=False, width=120) for d in docs)


def rendered(stack: Stack, compose: ComposeSettings, kube: KubeSettings, source: Path = KUBE_STACK) -> dict[str, str]:
    """{file name in deploy/kubernetes/base/: text}, the kustomization listing them included."""
    source = stack.project / source
    name = source.relative_to(stack.project) if source.is_relative_to(stack.project) else source
    header = HEADER.format(source=name)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(kube.namespace, "twinserve")}
    files = {"namespace.yaml": [namespace], **objects(stack, compose, kube)}
    for docs in files.values():  # each object names its namespace (the adapter's RoleBinding: kube-system)
        for doc in docs:
            if doc["kind"] not in CLUSTER_KINDS:
                doc["metadata"] = {"name": doc["metadata"]["name"], "namespace": kube.namespace} | doc["metadata"]
    # No `namespace:` here: kustomize would move the adapter's RoleBinding out of kube-system.
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": [*files]}
    return {
        "kustomization.yaml": header + yaml.safe_dump(kustomization, sort_keys=False),
        **{f: header + dump(docs) for f, docs in files.items()},
    }


def write_rendered(target: Path | None = None, path: Path | None = None) -> str:
    """Render into the project's deploy/kubernetes/base/; says which files changed (and removes stale ones)."""
    stack, compose, kube = load(path)
    target = target or stack.project / BASE_DIR
    target.mkdir(parents=True, exist_ok=True)
    files = rendered(stack, compose, kube)
    changed = [n for n, text in files.items() if not (target / n).is_file() or (target / n).read_text() != text]
    for name in changed:
        (target / name).write_text(files[name])
    stale = [p.name for p in target.glob("*.yaml") if p.name not in files]
    for name in stale:
        (target / name).unlink()
    done = [f"rewrote {', '.join(changed)}"] * bool(changed) + [f"removed {', '.join(stale)}"] * bool(stale)
    return f"{target}: {'; '.join(done) or 'up to date'}"
