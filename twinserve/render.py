"""Render Nginx and TorchServe configurations from the stack description.

Pure: stack in, text out. The templates live beside the component they
configure (nginx/, config/torchserve/); every port and path comes from the
Stack, so none is written twice.
"""

import jinja2

from twinserve.settings import REPO_ROOT, Stack
from twinserve.state import production_file

NGINX_TEMPLATE = REPO_ROOT / "nginx" / "nginx.conf.j2"
TORCHSERVE_TEMPLATE = REPO_ROOT / "config" / "torchserve" / "config.properties.j2"
LOG4J_CONFIG = REPO_ROOT / "config" / "torchserve" / "log4j2.xml"

# Upper bounds (seconds) of the per-request latency histogram Nginx keeps.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# Errors Nginx itself answers; each gets a JSON body instead of an HTML page.
NGINX_ERRORS = {
    404: "not found; POST /predict or /test/predict, GET /healthz",
    405: "method not allowed; use POST",
    413: "request body too large",  # the limit is added at render time
    429: "too many requests; slow down and retry",
    500: "internal error in the proxy",
    502: "the serving colour cannot be reached",
    503: "the serving colour is unavailable",
    504: "the serving colour did not answer in time",
}


def _template(path) -> jinja2.Template:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(path.read_text())


def nginx_dir(stack: Stack):
    return stack.var_dir / "nginx"


def log_dir(stack: Stack):
    return stack.var_dir / "logs"


def render_nginx(stack: Stack) -> str:
    return _template(NGINX_TEMPLATE).render(
        stack=stack,
        nginx=stack.nginx,
        ts=stack.torchserve,
        colours=stack.colour_names,
        model=next(iter(stack.models)),
        errors={**NGINX_ERRORS, 413: f"request body too large; at most {stack.nginx.max_body}"},
        nginx_dir=nginx_dir(stack),
        log_dir=log_dir(stack),
        production_file=production_file(stack),
        latency_buckets=LATENCY_BUCKETS,
    )


TORCHSERVE_APIS = ("inference", "management", "metrics", "grpc")


def render_torchserve(stack: Stack, colour: str, archives: dict[str, str], binds: dict[str, str] | None = None) -> str:
    """config.properties for one colour.

    Args:
        archives: {model name: archive file name in the colour's store} to load at start.
        binds: {API of TORCHSERVE_APIS: bind address}; default torchserve.host for each (natively
            loopback; a compose colour binds each API to the address of the network that may reach it).
    """
    return _template(TORCHSERVE_TEMPLATE).render(
        bind={api: stack.torchserve.host for api in TORCHSERVE_APIS} | dict(binds or {}),
        ts=stack.torchserve,
        colour=stack.colours[colour],
        store=stack.colour_store(colour),
        load_models=",".join(f"{name}={archive}" for name, archive in archives.items()),
    )


PROMETHEUS_TEMPLATE = REPO_ROOT / "config" / "prometheus" / "prometheus.yml.j2"
PROMETHEUS_RULES = REPO_ROOT / "config" / "prometheus" / "rules"
ALERTMANAGER_TEMPLATE = REPO_ROOT / "config" / "alertmanager" / "alertmanager.yml.j2"


# What Prometheus scrapes besides the colours; each may live on its own host (a compose service).
PROMETHEUS_TARGETS = ("nginx", "nginx_exporter", "exporter", "drift", "node", "prometheus", "alertmanager")


def render_prometheus(stack: Stack, host: str = "127.0.0.1", rules_dir=PROMETHEUS_RULES, hosts=None) -> str:
    """prometheus.yml; `host` is where the targets are, `hosts` overrides it per target
    (a colour or one of PROMETHEUS_TARGETS): natively all share loopback, in compose each is a service."""
    hosts = {name: host for name in (*stack.colours, *PROMETHEUS_TARGETS)} | dict(hosts or {})
    return _template(PROMETHEUS_TEMPLATE).render(
        mon=stack.monitoring,
        drift=stack.drift,
        nginx=stack.nginx,
        colours=stack.colours,
        hosts=hosts,
        rules_dir=rules_dir,
    )


def render_alertmanager(stack: Stack, host: str = "127.0.0.1") -> str:
    return _template(ALERTMANAGER_TEMPLATE).render(mon=stack.monitoring, host=host)
