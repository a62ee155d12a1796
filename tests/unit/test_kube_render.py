"""deploy/kubernetes/: committed, current with the stack description, and coherent where no schema looks.

kubernetes-validate (test_kube_validate.py) checks each object alone. These tests check the objects
against each other, as kustomize builds them for each overlay: a Service or budget that selects no
pod, a probe on a port the container does not open, an HPA scaling a Deployment that does not exist,
are all schema-valid and all broken."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.checkout import REPO_ROOT
from tests.unit.kube_project import built, project_copy
from twinserve.compose.configs import NGINX_DIR
from twinserve.errors import ConfigError
from twinserve.kube import render
from twinserve.kube.render import BASE_DIR, KUBE_STACK, LOAD_METRIC, load, rendered, write_rendered
from twinserve.kube.validate import kustomizations

STACK, COMPOSE, KUBE = load(REPO_ROOT / KUBE_STACK)
FILES = rendered(STACK, COMPOSE, KUBE)
BUILDS = {str(d.relative_to(REPO_ROOT)): built(d) for d in kustomizations(REPO_ROOT)}


@pytest.mark.parametrize("name", sorted(FILES))
def test_committed_files_are_current(name):
    """Fails after a stack or template change until `twinserve render-kube` is run and committed."""
    assert (REPO_ROOT / BASE_DIR / name).read_text() == FILES[name], (
        f"{BASE_DIR}/{name} is stale: twinserve render-kube"
    )


def test_nothing_else_lives_in_the_base():
    assert sorted(p.name for p in (REPO_ROOT / BASE_DIR).iterdir()) == sorted(FILES)


def test_overlays_exist_and_patch_no_port():
    """Ports are the base's, from config/stack.yaml: an overlay that wrote one would be a second source."""
    overlays = sorted((REPO_ROOT / "deploy" / "kubernetes" / "overlays").glob("*/kustomization.yaml"))
    assert len(overlays) >= 2
    names_port = re.compile(r"\bports?\b|[a-z]port\s*:", re.I)  # ports, port:, containerPort:, nodePort: ...
    assert names_port.search("- op: add\n  path: /spec/ports/0/nodePort") and not names_port.search("type: NodePort")
    for path in overlays:
        text = yaml.safe_dump(yaml.safe_load(path.read_text()))  # what kustomize reads: no comments
        assert not names_port.search(text), f"{path} names a port"


def test_write_rendered_rewrites_only_what_changed_and_removes_strays(tmp_path):
    assert write_rendered(tmp_path).endswith(f"rewrote {', '.join(FILES)}")
    assert write_rendered(tmp_path).endswith("up to date")
    (tmp_path / "edge.yaml").write_text("stale")
    (tmp_path / "old.yaml").write_text("kind: Gone")
    assert write_rendered(tmp_path).endswith("rewrote edge.yaml; removed old.yaml")
    assert (tmp_path / "edge.yaml").read_text() == FILES["edge.yaml"] and not (tmp_path / "old.yaml").exists()


# What follows runs on each kustomization's build: the base and every overlay.
BUILD_IDS = sorted(BUILDS)


def of(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def pods(objs: list[dict]) -> list[tuple[dict, dict]]:
    """(workload, its pod template) of every Deployment and Job."""
    return [(o, o["spec"]["template"]) for o in objs if o["kind"] in ("Deployment", "Job")]


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def key(o: dict) -> tuple[str, str]:
    return o["metadata"].get("namespace", ""), o["metadata"]["name"]


@pytest.mark.parametrize("build", BUILD_IDS)
def test_every_workload_selects_its_own_pods(build):
    for d in of(BUILDS[build], "Deployment"):
        assert selects(d["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"]), key(d)


@pytest.mark.parametrize("build", BUILD_IDS)
def test_every_service_and_budget_selects_the_pods_of_exactly_one_deployment(build):
    objs = BUILDS[build]
    for o in of(objs, "Service") + of(objs, "PodDisruptionBudget"):
        selector = o["spec"]["selector"] if o["kind"] == "Service" else o["spec"]["selector"]["matchLabels"]
        chosen = [w for w, t in pods(objs) if w["kind"] == "Deployment" and key(w)[0] == key(o)[0]
                  and selects(selector, t["metadata"]["labels"])]  # fmt: skip
        assert len(chosen) == 1, f"{o['kind']} {key(o)} selects {[key(w) for w in chosen]}"


def container_ports(container: dict) -> set:
    return {p["name"] for p in container.get("ports", [])} | {p["containerPort"] for p in container.get("ports", [])}


@pytest.mark.parametrize("build", BUILD_IDS)
def test_every_probe_hits_a_port_its_container_opens(build):
    probed = 0
    for workload, template in pods(BUILDS[build]):
        for c in template["spec"]["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in c:
                    action = c[probe].get("httpGet") or c[probe].get("tcpSocket")
                    assert action["port"] in container_ports(c), f"{key(workload)} {c['name']} {probe}"
                    probed += 1
    assert probed >= 2 * len(STACK.colours) + 4  # readiness and liveness of every long-running container


@pytest.mark.parametrize("build", BUILD_IDS)
def test_every_service_port_targets_a_port_of_its_pods(build):
    objs = BUILDS[build]
    for s in of(objs, "Service"):
        (_, template), *_ = [(w, t) for w, t in pods(objs) if selects(s["spec"]["selector"], t["metadata"]["labels"])]
        opened = set().union(*(container_ports(c) for c in template["spec"]["containers"]))
        for p in s["spec"]["ports"]:
            assert p["targetPort"] in opened, f"Service {key(s)} port {p['name']}"


@pytest.mark.parametrize("build", BUILD_IDS)
def test_each_colour_has_one_hpa_on_its_own_deployment_and_production_load(build):
    objs = BUILDS[build]
    deployments = {key(d): d for d in of(objs, "Deployment")}
    hpas = of(objs, "HorizontalPodAutoscaler")
    assert sorted(h["spec"]["scaleTargetRef"]["name"] for h in hpas) == sorted(f"torchserve-{c}" for c in STACK.colours)
    for h in hpas:
        ref = h["spec"]["scaleTargetRef"]
        assert (ref["apiVersion"], ref["kind"]) == ("apps/v1", "Deployment")
        target = deployments[(key(h)[0], ref["name"])]
        colour = target["spec"]["template"]["metadata"]["labels"]["twinserve.io/colour"]
        (metric,) = h["spec"]["metrics"]
        assert metric["external"]["metric"] == {"name": LOAD_METRIC, "selector": {"matchLabels": {"colour": colour}}}
        assert "replicas" not in target["spec"], "a fixed count would fight the HPA at every apply"
        assert 1 <= h["spec"]["minReplicas"] <= h["spec"]["maxReplicas"]


def test_the_adapter_serves_the_metric_the_hpas_read_from_the_prometheus_service():
    objs = {(o["kind"], o["metadata"]["name"]): o for o in BUILDS[str(BASE_DIR)]}
    config = yaml.safe_load(objs[("ConfigMap", "prometheus-adapter-config")]["data"]["config.yaml"])
    (rule,) = config["externalRules"]
    assert rule["name"]["as"] == LOAD_METRIC and 'route="production"' in rule["metricsQuery"]
    assert "by (colour)" in rule["metricsQuery"], "each HPA selects its colour by this label"
    args = objs[("Deployment", "prometheus-adapter")]["spec"]["template"]["spec"]["containers"][0]["args"]
    prometheus = objs[("Service", "prometheus")]["spec"]["ports"][0]["port"]
    assert f"--prometheus-url=http://prometheus.{KUBE.namespace}.svc:{prometheus}" in args
    api = objs[("APIService", "v1beta1.external.metrics.k8s.io")]["spec"]["service"]
    assert api["port"] in {p["port"] for p in objs[("Service", api["name"])]["spec"]["ports"]}


@pytest.mark.parametrize("build", BUILD_IDS)
def test_every_volume_claim_configmap_and_account_a_pod_names_exists(build):
    objs = BUILDS[build]
    names = {(o["kind"], *key(o)) for o in objs}
    for workload, template in pods(objs):
        ns, spec = key(workload)[0], template["spec"]
        for v in spec.get("volumes", []):
            if "persistentVolumeClaim" in v:
                assert ("PersistentVolumeClaim", ns, v["persistentVolumeClaim"]["claimName"]) in names
            if "configMap" in v:
                assert ("ConfigMap", ns, v["configMap"]["name"]) in names
        if "serviceAccountName" in spec:
            assert ("ServiceAccount", ns, spec["serviceAccountName"]) in names
        mounted = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
        assert mounted <= {v["name"] for v in spec.get("volumes", [])}, key(workload)


@pytest.mark.parametrize("build", BUILD_IDS)
def test_network_policies_open_ports_of_pods_that_exist_to_pods_that_exist(build):
    objs = BUILDS[build]
    templates = [t for _, t in pods(objs)]

    def matching(selector: dict) -> list[dict]:
        return [t for t in templates if selects(selector, t["metadata"]["labels"])]

    policies = of(objs, "NetworkPolicy")
    assert any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] for p in policies), "no default deny"
    for p in policies:
        if not p["spec"]["podSelector"]:
            continue
        targets = matching(p["spec"]["podSelector"]["matchLabels"])
        assert targets, f"NetworkPolicy {key(p)} selects no pod"
        opened = set().union(*(container_ports(c) for t in targets for c in t["spec"]["containers"]))
        for rule in p["spec"]["ingress"]:
            assert {port["port"] for port in rule["ports"]} <= opened, key(p)
            for source in rule.get("from", []):
                assert matching(source["podSelector"]["matchLabels"]), f"{key(p)}: a source selects no pod"


def test_each_colour_api_is_open_only_to_those_that_use_it():
    """compose's networks, as policies: inference from the edge and the control plane, management from
    the control plane, metrics from Prometheus."""
    objs = {o["metadata"]["name"]: o for o in of(BUILDS[str(BASE_DIR)], "NetworkPolicy")}
    for colour, c in STACK.colours.items():
        for api, port, sources in (("inference", c.inference_port, ["edge", "control"]),
                                   ("management", c.management_port, ["control"]),
                                   ("metrics", c.metrics_port, ["prometheus"])):  # fmt: skip
            (rule,) = objs[f"torchserve-{colour}-{api}"]["spec"]["ingress"]
            assert rule["ports"] == [{"protocol": "TCP", "port": port}]
            assert [s["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for s in rule["from"]] == sources


def base(kind: str, name: str) -> dict:
    (o,) = [o for o in BUILDS[str(BASE_DIR)] if o["kind"] == kind and o["metadata"]["name"] == name]
    return o


def test_the_edge_reaches_each_colour_through_its_service_and_drops_connections_before_a_pod_stops():
    conf = base("ConfigMap", "edge-nginx")["data"]["nginx.conf"]
    for colour in STACK.colours:
        service = base("Service", f"torchserve-{colour}")
        port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "inference")
        block = re.search(rf"upstream {colour} \{{(.*?)\}}", conf, re.S).group(1)
        assert f"server {service['metadata']['name']}:{port};" in block
        lifetime = int(re.search(r"keepalive_time (\d+)s;", block).group(1))
        container = base("Deployment", f"torchserve-{colour}")["spec"]["template"]["spec"]
        drain = container["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert lifetime < drain, "Nginx may still hold a connection to the pod when it stops"
        assert container["terminationGracePeriodSeconds"] >= drain + STACK.torchserve.response_timeout
    edge = base("Deployment", "edge")["spec"]["template"]["spec"]["containers"][0]
    mounted = {m["mountPath"] for m in edge["volumeMounts"]}
    assert edge["command"][:3] == ["nginx", "-c", f"{render.NGINX_CONF_DIR}/nginx.conf"]
    assert render.NGINX_CONF_DIR in mounted and str(STACK.state_dir) in mounted, "the switch reads state at start"
    assert f"listen 0.0.0.0:{STACK.nginx.port} " in conf and f"listen 0.0.0.0:{STACK.nginx.admin_port};" in conf


def test_prometheus_scrapes_every_colour_and_edge_pod_with_the_native_rules():
    config = yaml.safe_load(base("ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for job, app, port in (("torchserve", "torchserve", "metrics"), ("nginx", "edge", "admin")):
        keep = jobs[job]["relabel_configs"][0]
        assert keep["action"] == "keep" and keep["regex"] == f"{app};{port}"
        labelled = [
            t for _, t in pods(BUILDS[str(BASE_DIR)]) if t["metadata"]["labels"]["app.kubernetes.io/name"] == app
        ]
        assert labelled and all(port in container_ports(c) for t in labelled for c in t["spec"]["containers"])
    # The recording rules and the dashboards group TorchServe's series by colour: the pod's colour label.
    colour = {"source_labels": ["__meta_kubernetes_pod_label_twinserve_io_colour"], "target_label": "colour"}
    assert colour in jobs["torchserve"]["relabel_configs"]
    rules = base("ConfigMap", "prometheus-rules")["data"]
    assert rules == {p.name: p.read_text() for p in sorted((REPO_ROOT / "config/prometheus/rules").glob("*.yml"))}
    assert config["rule_files"] == [f"{COMPOSE.prometheus_rules}/*.yml"]


# Ports come from config/stack.yaml: move them in a copy and the manifests follow.


def test_every_port_of_the_stack_moves_with_config_stack_yaml(tmp_path):
    from tests.unit.stacks import shifted

    root = project_copy(tmp_path)
    raw = yaml.safe_load((root / "config" / "stack.yaml").read_text())
    (root / "config" / "stack.yaml").write_text(yaml.safe_dump(shifted(raw, 1000), sort_keys=False))
    stack, compose, kube = load(root / KUBE_STACK)
    assert stack.colours["blue"].inference_port == STACK.colours["blue"].inference_port + 1000
    objs = [o for docs in render.objects(stack, compose, kube).values() for o in docs]
    opened = {p["containerPort"] for w, t in pods(objs) for c in t["spec"]["containers"] for p in c.get("ports", [])}
    served = {p["port"] for s in of(objs, "Service") for p in s["spec"]["ports"]}
    allowed = {p["port"] for n in of(objs, "NetworkPolicy") for r in n["spec"].get("ingress", []) for p in r["ports"]}
    own = {kube.adapter_port, 443}  # the adapter's, from kube:, and the port the API server calls it on
    used = set(stack.ports) | own
    assert opened | served | allowed <= used and not (opened | served | allowed) & (set(STACK.ports) - used)
    colour_ports = {p for c in stack.colours.values() for p in (c.inference_port, c.management_port, c.metrics_port)}
    assert colour_ports <= opened and colour_ports <= allowed
    assert {stack.nginx.port, stack.nginx.admin_port, stack.monitoring.prometheus_port} <= served
    conf = render.edge_conf(stack, kube)
    assert f"listen 0.0.0.0:{stack.nginx.port} " in conf
    assert f"server torchserve-green:{stack.colours['green'].inference_port};" in conf


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"drain_seconds": 10}, "must exceed kube.upstream_keepalive_seconds"),
        ({"adapter_port": 8080}, "already a stack port"),
        ({"images": {"twinserve": "x"}}, "kube.images must name"),
        ({"torchserve": {"min_replicas": 3, "max_replicas": 2}}, "min_replicas <= max_replicas"),
        ({"storage": {"state": "1Gi"}}, "kube.storage needs"),
        ({"replicas": 2}, "unknown ['replicas']"),
    ],
)
def test_a_bad_kube_section_is_refused_naming_the_field(tmp_path, change, says):
    root = project_copy(tmp_path)
    path = root / KUBE_STACK
    raw = yaml.safe_load(path.read_text())
    raw["kube"] = render_merge(raw["kube"], change)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ConfigError, match=re.escape(says)):
        load(path)


def render_merge(kube: dict, change: dict) -> dict:
    """`change` over the kube section; a mapping under torchserve merges, any other key replaces."""
    out = dict(kube)
    for k, v in change.items():
        out[k] = {**kube[k], **v} if k == "torchserve" else v
    return out


def test_an_nginx_template_without_upstream_keepalive_is_refused(monkeypatch):
    """The keep-alive lifetime is the drain's other half: a template change that loses it must not pass."""
    conf = render.nginx_conf(STACK)
    monkeypatch.setattr(render, "nginx_conf", lambda stack: re.sub(r"\n\s*keepalive \d+;", "", conf))
    with pytest.raises(ConfigError, match="0 upstream keepalive lines for 2 colours"):
        render.edge_conf(STACK, KUBE)


def test_the_base_builds_without_the_checkout(tmp_path):
    """kustomize loads nothing from outside deploy/kubernetes/ (its default load restrictions)."""
    shutil.copytree(REPO_ROOT / "deploy", tmp_path / "deploy")
    assert len(built(tmp_path / BASE_DIR)) == len(BUILDS[str(BASE_DIR)])


NGINX_MODULES = Path("/usr/share/nginx/modules")


@pytest.mark.skipif(
    shutil.which("nginx") is None or not (NGINX_MODULES / "ngx_http_lua_module.so").is_file(),
    reason="nginx with Lua not installed (make install)",
)
def test_the_edge_conf_passes_nginx_t_with_debian_s_nginx(tmp_path):
    """The image's Nginx is Debian's 1.22: keepalive_time must be a directive it knows in an upstream.
    The container paths move under tmp_path and the colours' Service names resolve to loopback."""
    conf = base("ConfigMap", "edge-nginx")["data"]["nginx.conf"]
    conf = conf.replace(str(STACK.var_dir), str(tmp_path)).replace(NGINX_DIR, str(REPO_ROOT / "nginx"))
    for colour in STACK.colours:
        conf = conf.replace(f"server torchserve-{colour}:", "server 127.0.0.1:")
    for d in ("nginx/tmp", "logs", "state"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "nginx.conf").write_text(conf)
    check = [shutil.which("nginx"), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    result = subprocess.run([*check, "-e", str(tmp_path / "logs" / "error.log")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken.conf"  # the same check refuses a directive Nginx does not know there
    broken.write_text(conf.replace("keepalive_time 10s;", "keepalive_lifetime 10s;", 1))
    result = subprocess.run([*check[:-1], str(broken), "-e", str(tmp_path / "logs" / "error.log")],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0 and 'unknown directive "keepalive_lifetime"' in result.stderr
