"""Render Nginx and TorchServe configurations from the stack description.

Pure: stack in, text out. The templates live beside the component they
configure (nginx/, config/torchserve/) in the project directory (settings.py);
the paths below are relative to it (stack.project). Every port and path comes
from the Stack, so none is written twice.
"""

import json
from pathlib import Path

import jinja2

from twinserve.errors import ConfigError
from twinserve.routes import Route, route_for
from twinserve.routes import routes as stack_routes
from twinserve.settings import Stack, parse_size
from twinserve.store.state import admin_token_file, production_file

NGINX_TEMPLATE = Path("nginx", "nginx.conf.j2")
NGINX_LUA = Path("nginx", "lua")  # the switch and the metrics, loaded by the rendered nginx.conf
TORCHSERVE_TEMPLATE = Path("config", "torchserve", "config.properties.j2")
LOG4J_CONFIG = Path("config", "torchserve", "log4j2.xml")

# Upper bounds (seconds) of the per-request latency histogram Nginx keeps.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# Errors Nginx itself answers, by the code Nginx gives them: (status sent, JSON error).
# 494 is Nginx's "request header too large", which it sends as 400.
NGINX_ERRORS = {
    400: (400, "bad request: malformed HTTP (request line, Host, Content-Length or Transfer-Encoding)"),
    404: (
        404,
        f"not found; POST {route_for('<model>')} or {route_for('<model>', staging=True)} "
        f"(or {route_for()}, {route_for(staging=True)}), GET /healthz",
    ),
    405: (405, "method not allowed; use POST"),
    411: (411, "length required: send Content-Length"),
    413: (413, "request body too large"),  # the limit is added at render time
    414: (414, "request URI too long; at most 8 KB"),
    429: (429, "too many requests; slow down and retry"),
    494: (400, "request header too large; at most 8 KB per header line"),
    500: (500, "internal error in the proxy"),
    501: (501, "not implemented: unsupported Transfer-Encoding"),
    502: (502, "the serving colour cannot be reached"),
    503: (503, "the serving colour is unavailable; retry shortly"),
    504: (504, "the serving colour did not answer in time"),
    505: (505, "HTTP version not supported; use HTTP/1.1"),
    507: (503, "the serving colour lost its worker during the request; retry shortly"),
}
# Refused while Nginx reads the request, before it has a URI: their error pages
# must be URIs (internal locations), as a named location needs the request's URI.
EARLY_ERRORS = (400, 414, 494, 501, 505)
# What the admin server says for the errors Nginx answers there itself (its locations
# answer their own JSON from the Lua): the same JSON as the public server's, its own words.
ADMIN_ERRORS = {
    **{c: NGINX_ERRORS[c] for c in (400, 411, 414, 494, 500, 501, 505)},
    403: (403, "forbidden: the admin server answers only the addresses it allows"),
    404: (404, "not found; GET or PUT /production, PUT /inference-key, GET /metrics, GET /stub_status"),
    405: (405, "method not allowed"),
    413: (413, "request body too large"),  # the limit is added at render time
}
# Seconds a client should wait before retrying, per code above.
RETRY_AFTER = {503: 1, 507: 1}
# Nginx's own errors on the proxied routes, answered with its JSON. Every answer of
# TorchServe passes through (proxy_intercept_errors off): the handler's 400, 413 and 500
# name the bad input, and a 413 of the handler (a text over its own limit) must not
# become Nginx's "body too large". TorchServe's frontend answers without X-Model-Version
# are the service failing, and edge.lua turns them into a JSON 503 with Retry-After:
# 507 (a worker died mid-request), 503, and 400 (a refused inference key).
PROXIED_ERRORS = (405, 413, 429, 502, 503, 504)
FRONTEND_ERRORS = (503, 507)  # besides 400: edge.lua has its own message for it


def lua_literal(value) -> str:
    """A Lua literal for a dict, list, str, bool or number: the config table Nginx's Lua reads."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if any(not (" " <= ch <= "~") for ch in value):
            raise ConfigError(f"{value!r}: only printable ASCII can go into Nginx's Lua configuration")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        # A key that is not a Lua name ("503") goes in brackets: `503 = ...` is a Lua syntax error.
        keys = [k if str(k).isidentifier() else f"[{lua_literal(str(k))}]" for k in value]
        return "{ " + ", ".join(f"{k} = {lua_literal(v)}" for k, v in zip(keys, value.values(), strict=True)) + " }"
    if isinstance(value, list | tuple):
        return "{ " + ", ".join(lua_literal(v) for v in value) + " }"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def _template(stack: Stack, path: Path) -> jinja2.Template:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string((stack.project / path).read_text())


def nginx_dir(stack: Stack):
    return stack.var_dir / "nginx"


def log_dir(stack: Stack):
    return stack.var_dir / "logs"


def nginx_lua_config(stack: Stack) -> dict:
    """What nginx/lua/twinserve/edge.lua's init receives."""
    return {
        "dict": "twinserve",
        "metrics_dict": "twinserve_metrics",
        "colours": stack.colour_names,
        "models": list(stack.models),
        "default_model": stack.default,
        "production_files": {m: str(production_file(stack, m)) for m in stack.models},
        "token_file": str(admin_token_file(stack)),
        # TorchServe's key files; the master reads them at start, the control plane publishes new ones.
        "key_files": {c: str(stack.key_file(c)) for c in stack.colours} if stack.torchserve.token_auth else {},
        "latency_buckets": list(LATENCY_BUCKETS),
        "frontend_errors": [[c, NGINX_ERRORS[c][1]] for c in FRONTEND_ERRORS],  # pairs: Lua keys cannot be digits
        "cache_dict": "twinserve_cache",
        "cached_models": [m for m, spec in stack.models.items() if spec.cached()],
        "cache_max_entry": parse_size(stack.nginx.cache_max_entry, "nginx.cache_max_entry"),
    }


def routes(stack: Stack) -> list[Route]:
    """The stack's public prediction routes, as twinserve/routes.py builds them."""
    return stack_routes(stack.models, stack.default)


def unknown_model_body(stack: Stack) -> str:
    """The JSON 404 of /predict/<a model this stack does not serve>."""
    models = list(stack.models)
    return json.dumps({"error": f"unknown model; POST {route_for('<model>')} with one of: {', '.join(models)}",
                       "models": models})  # fmt: skip


def render_nginx(stack: Stack) -> str:
    errors = {**NGINX_ERRORS, 413: (413, f"request body too large; at most {stack.nginx.max_body}")}
    return _template(stack, NGINX_TEMPLATE).render(
        stack=stack,
        nginx=stack.nginx,
        ts=stack.torchserve,
        colours=stack.colour_names,
        routes=routes(stack),
        limits=stack.body_limits(),
        unknown_model=unknown_model_body(stack),
        errors=errors,
        admin_errors={**ADMIN_ERRORS, 413: (413, f"request body too large; at most {stack.nginx.max_body}")},
        retry_after=RETRY_AFTER,
        early_errors=EARLY_ERRORS,
        location_errors=PROXIED_ERRORS,
        nginx_dir=nginx_dir(stack),
        log_dir=log_dir(stack),
        lua_dir=stack.nginx.lua_dir or stack.project / NGINX_LUA,
        lua_config=lua_literal(nginx_lua_config(stack)),
        cache_bytes=max(parse_size(stack.nginx.cache_size, "nginx.cache_size"), 128 * 1024),  # Nginx's least
    )


TORCHSERVE_APIS = ("inference", "management", "metrics", "grpc")


def render_torchserve(stack: Stack, colour: str, archives: dict[str, str], binds: dict[str, str] | None = None) -> str:
    """config.properties for one colour.

    Args:
        archives: {model name: archive file name in the colour's store} to load at start.
        binds: {API of TORCHSERVE_APIS: bind address}; default torchserve.host for each (natively
            loopback; a compose colour binds each API to the address of the network that may reach it).
    """
    return _template(stack, TORCHSERVE_TEMPLATE).render(
        bind={api: stack.torchserve.host for api in TORCHSERVE_APIS} | dict(binds or {}),
        ts=stack.torchserve,
        # TorchServe's limit is global: the largest model's body limit (Nginx bounds each model's routes).
        max_request_bytes=max(stack.torchserve.max_request_bytes, *stack.body_limits().values()),
        colour=stack.colours[colour],
        store=stack.colour_store(colour),
        load_models=",".join(f"{name}={archive}" for name, archive in archives.items()),
    )


PROMETHEUS_TEMPLATE = Path("config", "prometheus", "prometheus.yml.j2")
PROMETHEUS_RULES = Path("config", "prometheus", "rules")
ALERTMANAGER_TEMPLATE = Path("config", "alertmanager", "alertmanager.yml.j2")


# What Prometheus scrapes besides the colours; each may live on its own host (a compose service).
PROMETHEUS_TARGETS = ("nginx", "nginx_exporter", "exporter", "drift", "node", "prometheus", "alertmanager")


def render_prometheus(stack: Stack, host: str = "127.0.0.1", rules_dir=None, hosts=None) -> str:
    """prometheus.yml; `host` is where the targets are, `hosts` overrides it per target
    (a colour or one of PROMETHEUS_TARGETS): natively all share loopback, in compose each is a service."""
    hosts = {name: host for name in (*stack.colours, *PROMETHEUS_TARGETS)} | dict(hosts or {})
    return _template(stack, PROMETHEUS_TEMPLATE).render(
        mon=stack.monitoring,
        drift=stack.drift,
        nginx=stack.nginx,
        colours=stack.colours,
        hosts=hosts,
        rules_dir=rules_dir or stack.project / PROMETHEUS_RULES,
    )


def render_alertmanager(stack: Stack, host: str = "127.0.0.1") -> str:
    return _template(stack, ALERTMANAGER_TEMPLATE).render(mon=stack.monitoring, host=host)
