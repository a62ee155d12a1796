"""The stack description (config/stack.yaml) of a project directory, loaded once per process.

The project directory holds what an installation of twinserve is made of besides
its code: config/ (the stack description, TorchServe's, Prometheus' and
Alertmanager's templates and rules), nginx/ (the template and its Lua), handlers/
(packed into every archive), models/, model_store/ and var/. It is found by one rule
(project_dir): $TWINSERVE_HOME if set, else the current directory; either must hold
config/stack.yaml. Nothing is looked up beside the installed package: a wheel
installed into any venv serves the project it is pointed at.

Why a project directory and not package data: these files are the operator's
configuration of one deployment (rate limits, alert rules, a new model kind's
handler), edited where users look for them, linted there (luacheck, promtool) and
mounted from there into the compose stack. A copy inside the wheel would be a second
source of truth that an edit of nginx/ does not reach.

TWINSERVE_STACK names another stack file (tests point it at a copy with free
ports and temporary directories). Relative paths in a stack file are resolved
against the project directory, so commands work the same from any stack file.

A stack file may `extends:` another and override only what differs
(config/stack.compose.yaml: the same ports, with compose service names for
hosts), so no port is written twice. Optional fields default to the native
stack's values: where a client connects is also where the server listens.
"""

import os
import re
from dataclasses import MISSING, dataclass, field
from pathlib import Path

import yaml

from twinserve.errors import ConfigError

PROJECT_ENV = "TWINSERVE_HOME"
STACK_FILE = Path("config") / "stack.yaml"  # in the project directory; its presence marks one
COLOUR_RE = re.compile(r"^[a-z]{1,16}$")
MODEL_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # a URL segment, a file name, a Lua key and a metric label


@dataclass(frozen=True)
class NginxSettings:
    host: str
    port: int
    admin_port: int
    modules_dir: Path | None  # None: Lua is built in (OpenResty), nothing to load
    worker_processes: int
    max_body: str
    rate_per_second: int
    rate_burst: int
    upstream_keepalive: int
    timeout_seconds: int
    listen: str | None = None  # bind address when clients use another name (0.0.0.0 in a container)
    admin_allow: tuple[str, ...] = ()  # networks besides loopback that may use the admin server
    lua_dir: str | None = None  # where Nginx finds nginx/lua (a container's mount); default: the checkout's
    cache_size: str = "64m"  # the response cache's shared dictionary (nginx/lua/twinserve/cache.lua)
    cache_max_entry: str = "64k"  # a larger answer is not cached

    @property
    def listen_host(self) -> str:
        return self.listen or self.host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.admin_port}"


@dataclass(frozen=True)
class TorchServeSettings:
    host: str
    job_queue_size: int
    netty_threads: int
    response_timeout: int
    max_request_bytes: int
    max_response_bytes: int
    java_heap: str
    start_timeout_seconds: int
    # TorchServe 0.12's token authorization. On natively, where every local user reaches the
    # loopback ports; off in compose, where only the control network reaches management and
    # only Nginx's network reaches inference (tests/compose show a wrong network refused).
    token_auth: bool = True


@dataclass(frozen=True)
class MonitoringSettings:
    prometheus_port: int
    alertmanager_port: int
    node_exporter_port: int
    nginx_exporter_port: int
    exporter_port: int
    alert_receiver_port: int
    scrape_interval_seconds: int
    prometheus_host: str = "127.0.0.1"  # where the control plane queries it (the pipeline's bake)
    # Prometheus' /-/reload and /-/quit: off, as any local user could stop Prometheus through them.
    prometheus_lifecycle: bool = False

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.prometheus_host}:{self.prometheus_port}"

    @property
    def ports(self) -> list[int]:
        return [self.prometheus_port, self.alertmanager_port, self.node_exporter_port,
                self.nginx_exporter_port, self.exporter_port, self.alert_receiver_port]  # fmt: skip


@dataclass(frozen=True)
class DriftConfig:
    broker_port: int
    topic: str
    consumer_metrics_port: int
    window: int
    min_samples: int
    queue_batches: int
    broker_host: str = "127.0.0.1"
    topic_max_mb: int = 64  # the inputs topic is created with retention.bytes at this bound (Tansu ignores it)
    verdict: dict = field(default_factory=dict)  # the verdict's windows and thresholds; checked by drift.detect

    @property
    def bootstrap(self) -> str:
        return f"{self.broker_host}:{self.broker_port}"


@dataclass(frozen=True)
class Colour:
    name: str
    inference_port: int
    management_port: int
    metrics_port: int
    grpc_inference_port: int
    grpc_management_port: int
    host: str | None = None  # where clients reach this colour; default: torchserve.host
    management_host: str | None = None  # where the control plane reaches its management API; default: host

    @property
    def ports(self) -> list[int]:
        return [
            self.inference_port,
            self.management_port,
            self.metrics_port,
            self.grpc_inference_port,
            self.grpc_management_port,
        ]


@dataclass(frozen=True)
class PipelineSettings:
    """The gates of the delivery pipeline (twinserve/pipeline): what a new version must show."""

    load_users: int = 20  # load gate: Locust on /test/predict
    load_seconds: int = 20
    load_max_error_ratio: float = 0.01
    load_max_p99_ms: float = 250.0
    load_min_rps: float = 20.0
    bake_seconds: int = 60  # bake: production watched through Prometheus after promotion
    bake_window_seconds: int = 30  # rate() window of each bake check
    bake_max_error_ratio: float = 0.01
    bake_max_p99_ms: float = 250.0
    bake_breaches_to_fail: int = 2  # consecutive failed checks that roll back


@dataclass(frozen=True)
class SupervisorSettings:
    """The native stack's supervisor (twinserve/runtime/supervisor.py): restarts and log rotation."""

    check_seconds: float = 1.0  # how often it looks for a process that died
    backoff_max_seconds: float = 60.0  # a crash loop waits 1, 2, 4 ... up to this between restarts
    stable_seconds: float = 60.0  # up this long after a restart: the next crash restarts at once
    log_max_mb: int = 50  # every log is rotated past this size (logrotate; TorchServe's log4j2)
    log_keep: int = 3  # rotated copies kept per log, gzipped
    rotate_every_seconds: float = 10.0  # how often the supervisor runs logrotate


def parse_size(value, where: str) -> int:
    """Bytes from an Nginx-style size: 65536, "64k", "1m"."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)\s*", str(value))
    if not match or isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a size (bytes, or a number with k or m)")
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    dir: Path
    version: str
    gates: "PipelineSettings | None" = None  # the stack's pipeline: section with this model's pipeline: on top

    def _config(self) -> tuple[Path, dict, dict]:
        """(model-config.yaml's path, its `twinserve:` section, its `handler:` section); empty without the file."""
        config_file = self.dir / "model-config.yaml"
        try:
            config = yaml.safe_load(config_file.read_text()) or {}
        except FileNotFoundError:
            config = {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_file} is not valid YAML: {exc}") from None
        if not isinstance(config, dict):
            raise ConfigError(f"{config_file}: expected a mapping")
        return config_file, config.get("twinserve") or {}, config.get("handler") or {}

    def body_limit(self, default: str) -> int:
        """The largest request body this model takes, in bytes: its model-config.yaml's
        `twinserve.max_body`, else its handler's `max_bytes`, else `default` (nginx.max_body).
        Nginx answers 413 above it on the model's routes."""
        config_file, ours, handler = self._config()
        if "max_body" in ours:
            return parse_size(ours["max_body"], f"{config_file}: twinserve.max_body")
        if "max_bytes" in handler:
            return parse_size(handler["max_bytes"], f"{config_file}: handler.max_bytes")
        return parse_size(default, "nginx.max_body")

    def cached(self) -> bool:
        """Whether Nginx caches this model's production answers: `twinserve.cache` if set, else
        `twinserve.deterministic` (an answer that is a pure function of the request), else no."""
        config_file, ours, _ = self._config()
        for key in ("cache", "deterministic"):
            if key in ours:
                if not isinstance(ours[key], bool):
                    raise ConfigError(f"{config_file}: twinserve.{key} is {ours[key]!r}; expected true or false")
                return ours[key]
        return False


@dataclass(frozen=True)
class Stack:
    path: Path
    project: Path  # the project directory (project_dir): templates, rules, Lua, handlers, models
    var_dir: Path
    state_dir: Path
    model_store: Path
    nginx: NginxSettings
    torchserve: TorchServeSettings
    monitoring: MonitoringSettings
    drift: DriftConfig
    colours: dict[str, Colour]
    models: dict[str, ModelSpec]
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)
    default_model: str = ""  # what /predict and every command without a model name serve; "" = the first model

    @property
    def default(self) -> str:
        """The stack's default model: `default_model:`, or the first of `models:`."""
        return self.default_model or next(iter(self.models))

    def model(self, name: str | None = None) -> str:
        """`name` if the stack serves it (None: the default model); a ConfigError listing the models if not."""
        if name is None:
            return self.default
        if name not in self.models:
            raise ConfigError(f"unknown model {name!r}; this stack serves {', '.join(self.models)}")
        return name

    def gates(self, model: str) -> PipelineSettings:
        """The pipeline's gates for `model`: the stack's `pipeline:` section, with the keys of the
        model's own `pipeline:` (models.<name>.pipeline) in their place. A transformer on two cores
        cannot pass the gates of a linear regressor, and the regressor should not pass a transformer's."""
        spec = self.models.get(model)
        return spec.gates if spec is not None and spec.gates is not None else self.pipeline

    def body_limits(self) -> dict[str, int]:
        """{model: its largest request body in bytes} (ModelSpec.body_limit)."""
        return {name: spec.body_limit(self.nginx.max_body) for name, spec in self.models.items()}

    @property
    def colour_names(self) -> list[str]:
        return list(self.colours)

    def other(self, colour: str) -> str:
        """The colour that is not `colour`."""
        (other,) = [c for c in self.colours if c != colour]
        return other

    def colour_dir(self, colour: str) -> Path:
        return self.var_dir / colour

    def colour_store(self, colour: str) -> Path:
        return self.colour_dir(colour) / "model-store"

    def key_file(self, colour: str) -> Path:
        """TorchServe's key_file.json: written at every start in its working directory, the colour's dir."""
        return self.colour_dir(colour) / "key_file.json"

    @property
    def ports(self) -> list[int]:
        """Every port the stack listens on (each must be distinct)."""
        ports = [self.nginx.port, self.nginx.admin_port, *self.monitoring.ports]
        ports += [self.drift.broker_port, self.drift.consumer_metrics_port]
        return ports + [p for c in self.colours.values() for p in c.ports]

    def colour_host(self, colour: str) -> str:
        return self.colours[colour].host or self.torchserve.host

    def inference_url(self, colour: str) -> str:
        return f"http://{self.colour_host(colour)}:{self.colours[colour].inference_port}"

    def management_url(self, colour: str) -> str:
        host = self.colours[colour].management_host or self.colour_host(colour)
        return f"http://{host}:{self.colours[colour].management_port}"


def _path(value, root: Path) -> Path:
    p = Path(value)
    return p if p.is_absolute() else (root / p)


def _section(cls, raw: dict, where: str, **extra):
    fields = {n: f for n, f in cls.__dataclass_fields__.items() if n not in extra}
    missing = [n for n, f in fields.items() if n not in (raw or {}) and f.default is MISSING]
    unknown = [k for k in (raw or {}) if k not in fields]
    if missing or unknown:
        raise ConfigError(f"{where}: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}")
    values = {n: raw[n] for n in fields if n in raw}
    return cls(**{n: tuple(v) if isinstance(v, list) else v for n, v in values.items()}, **extra)


def _model(name: str, spec: dict, pipeline: dict, path: Path, root: Path) -> ModelSpec:
    """A `models:` entry: dir, version, and optionally pipeline: (gates of its own over the stack's)."""
    unknown = [k for k in spec if k not in ("dir", "version", "pipeline")]
    if unknown:
        raise ConfigError(f"{path}: models.{name}: unknown {unknown}; expected dir, version, pipeline")
    own = spec.get("pipeline")
    if own is not None and not isinstance(own, dict):
        raise ConfigError(f"{path}: models.{name}.pipeline: expected a mapping of pipeline: keys")
    gates = _section(PipelineSettings, {**pipeline, **own}, f"{path}: models.{name}.pipeline") if own else None
    return ModelSpec(name=name, dir=_path(spec["dir"], root), version=str(spec["version"]), gates=gates)


def project_dir() -> Path:
    """The project directory: $TWINSERVE_HOME if set, else the current directory; it must hold config/stack.yaml.

    Children that twinserve starts get TWINSERVE_HOME (runtime/processes.py), so a process started
    in another directory serves the same project."""
    named = os.environ.get(PROJECT_ENV)
    root = Path(named or os.getcwd()).resolve()
    if not (root / STACK_FILE).is_file():
        where = f"{PROJECT_ENV}={named}" if named else f"the current directory {root}"
        raise ConfigError(
            f"no twinserve project: {where} holds no {STACK_FILE}; "
            f"set {PROJECT_ENV} to the project directory or run there"
        )
    return root


def default_stack() -> Path:
    """The project's config/stack.yaml."""
    return project_dir() / STACK_FILE


def parse_stack(raw: dict, path: Path, root: Path | None = None) -> Stack:
    """Validate a loaded stack description; every error names the field. Relative paths are
    resolved against `root`, by default the project directory."""
    root = project_dir() if root is None else root
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping")
    try:
        nginx = _section(NginxSettings, raw["nginx"], f"{path}: nginx")
        modules_dir = Path(nginx.modules_dir) if nginx.modules_dir else None  # none: Lua built in (OpenResty)
        nginx = NginxSettings(**{**nginx.__dict__, "modules_dir": modules_dir})
        ts = _section(TorchServeSettings, raw["torchserve"], f"{path}: torchserve")
        monitoring = _section(MonitoringSettings, raw["monitoring"], f"{path}: monitoring")
        drift = _section(DriftConfig, raw["drift"], f"{path}: drift")
        pipeline = _section(PipelineSettings, raw.get("pipeline") or {}, f"{path}: pipeline")
        supervisor = _section(SupervisorSettings, raw.get("supervisor") or {}, f"{path}: supervisor")
        colours = {
            name: _section(Colour, spec, f"{path}: colours.{name}", name=name) for name, spec in raw["colours"].items()
        }
        gates = raw.get("pipeline") or {}
        models = {name: _model(name, spec, gates, path, root) for name, spec in raw["models"].items()}
        stack = Stack(
            path=path,
            project=root,
            var_dir=_path(raw["var_dir"], root),
            state_dir=_path(raw["state_dir"], root),
            model_store=_path(raw["model_store"], root),
            nginx=nginx,
            torchserve=ts,
            monitoring=monitoring,
            drift=drift,
            colours=colours,
            models=models,
            pipeline=pipeline,
            supervisor=supervisor,
            default_model=str(raw.get("default_model") or ""),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: missing or malformed section {exc}") from None
    if len(colours) != 2 or not all(COLOUR_RE.match(c) for c in colours):
        raise ConfigError(f"{path}: colours must be exactly two lower-case names, got {list(colours)}")
    if not models:
        raise ConfigError(f"{path}: models must name at least one model")
    bad = [m for m in models if not MODEL_RE.match(str(m))]
    if bad:
        raise ConfigError(f"{path}: model names must be lower-case words (a-z, 0-9, _; a letter first), got {bad}")
    if stack.default_model and stack.default_model not in models:
        raise ConfigError(f"{path}: default_model {stack.default_model!r} is not one of models: {list(models)}")
    if len(set(stack.ports)) != len(stack.ports):
        raise ConfigError(f"{path}: a port is used twice: {sorted(stack.ports)}")
    return stack


def merge(base: dict, overlay: dict) -> dict:
    """`overlay` over `base`: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in overlay.items():
        both_dicts = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = merge(base[key], value) if both_dicts else value
    return merged


def read_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A stack file as a mapping, with the file it `extends:` (relative to its folder) under it."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"stack description {path} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    base = (path.parent / str(raw.pop("extends"))).resolve()
    if base in seen:
        raise ConfigError(f"{path}: extends {base}, which extends it again")
    parent = read_raw(base, (*seen, path.resolve()))
    if not isinstance(parent, dict):
        raise ConfigError(f"{base}: expected a mapping")
    return merge(parent, raw)


def load_stack(path: Path | None = None) -> Stack:
    """Load the stack description named by `path`, $TWINSERVE_STACK, or the project's config/stack.yaml."""
    path = Path(path or os.environ.get("TWINSERVE_STACK") or default_stack())
    return parse_stack(read_raw(path), path)
