"""Pack a model directory into <store>/<name>-<version>.mar with torch-model-archiver.

A model directory is what the ML engineer delivers:
    model.py, model-config.yaml, and artifacts/ written by its train.py
    (weights.pt, reference_stats.json, golden_set.json; optionally metrics.json,
    and files/ for what the handler reads beside the weights, e.g. a tokenizer).

Beside each archive goes <name>-<version>.json: its sha256 and how it was built
(git commit, time, reference statistics, golden set, handler and
TorchServe settings from model-config.yaml). The
control plane reads it for smoke tests and drift detection without opening
the archive. Archives are immutable: an existing version is never overwritten.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from archiver import golden, modelconfig
from archiver.modelconfig import ModelConfigError
from archiver.reference import ReferenceError, reference_columns, reference_stats

# What every archive carries besides its kind's handler: the base and what it imports (in handlers/).
HANDLER_BASE = (
    "twinserve_handler.py", "request_errors.py", "ts_fastpath.py", "input_publisher.py", "drift_projection.py",
)  # fmt: skip
ARTIFACTS = ("weights.pt", "reference_stats.json", "golden_set.json")
OPTIONAL_ARTIFACTS = ("metrics.json",)  # e.g. held-out accuracy, copied into the metadata
MODEL_FILES = "files"  # artifacts/files/*: what the handler reads beside the weights (a tokenizer), packed as is
VERSION_RE = re.compile(r"[0-9]+(\.[0-9]+){0,2}")  # used with fullmatch: no trailing newline
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")


EXIT_FAILED = 1  # refused; nothing changed (the same codes as twinserve/errors.py)
EXIT_USAGE = 2  # the model directory, version or metadata is wrong


class ArchiveError(Exception):
    """A build that cannot go ahead; the message says what and why.

    It carries an exit code, as twinserve.errors.TwinserveError does, but is not
    one of its subclasses: archiver/ sits outside the twinserve package and never
    imports it (ARCHITECTURE: handlers/ and archiver/ build what TorchServe loads,
    without the control plane). `twinserve`'s one error handler
    (twinserve/cli/__init__.py) catches both families by name and exits with
    `exit_code`; a shared base would be a third package for two lines.
    """

    exit_code = EXIT_USAGE


class ArchiveExists(ArchiveError):
    """The version is archived already: archives are immutable, so the build is refused (nothing changed)."""

    exit_code = EXIT_FAILED


def project_root() -> Path:
    """The project whose handlers/ are packed: $TWINSERVE_HOME, else the current directory.

    twinserve.settings.project_dir's rule (the archiver imports nothing of twinserve), so an archive
    built by twinserve packs its project's handlers. Never this package's folder: an installed
    archiver has no handlers beside it."""
    return Path(os.environ.get("TWINSERVE_HOME") or os.getcwd()).resolve()


def handler_dir() -> Path:
    return project_root() / "handlers"


@dataclass(frozen=True)
class BuiltArchive:
    name: str
    version: str
    path: Path
    metadata_path: Path
    sha256: str


def archive_path(store: Path, name: str, version: str) -> Path:
    return store / f"{name}-{version}.mar"


def metadata_path(archive: Path) -> Path:
    return archive.with_suffix(".json")


def read_metadata(archive: Path) -> dict:
    """The metadata written beside an archive by build_archive."""
    path = metadata_path(archive)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArchiveError(f"no metadata beside {archive} (expected {path}); was it built by the archiver?") from None


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(project_root()), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def handler_files(kind: str) -> tuple[Path, list[Path]]:
    """The handler of a model kind and the modules it needs: handlers/<kind>_handler.py, its
    <kind>_codec.py if there is one, and the base. A new kind is one new handler file."""
    handlers = handler_dir()
    if not (handlers / HANDLER_BASE[0]).is_file():
        raise ArchiveError(f"no {HANDLER_BASE[0]} in {handlers}: run in the project directory or set TWINSERVE_HOME")
    handler = handlers / f"{kind}_handler.py"
    if kind == "twinserve" or not NAME_RE.fullmatch(str(kind)) or not handler.is_file():
        kinds = sorted(p.name.removesuffix("_handler.py") for p in handlers.glob("*_handler.py"))
        kinds.remove("twinserve")
        raise ArchiveError(f"twinserve.handler is {kind!r}; expected one of {kinds} (a handlers/<kind>_handler.py)")
    codec = handlers / f"{kind}_codec.py"
    return handler, [*(handlers / n for n in HANDLER_BASE), *([codec] if codec.is_file() else [])]


def _check_inputs(model_dir: Path, version: str) -> tuple[str, dict]:
    if not model_dir.is_dir():
        raise ArchiveError(f"model directory {model_dir} does not exist")
    name = model_dir.resolve().name
    if not NAME_RE.fullmatch(name):
        raise ArchiveError(f"model name {name!r} (the directory name) must match {NAME_RE.pattern}")
    if not VERSION_RE.fullmatch(version):
        raise ArchiveError(f"version {version!r} must be numbers separated by dots, e.g. 1.0 or 2.1.3")
    for required in ("model.py", "model-config.yaml"):
        if not (model_dir / required).is_file():
            raise ArchiveError(f"{model_dir / required} is missing")
    for artifact in ARTIFACTS:
        if not (model_dir / "artifacts" / artifact).is_file():
            raise ArchiveError(
                f"{model_dir / 'artifacts' / artifact} is missing; train first: python {model_dir / 'train.py'}"
            )
    try:
        config = yaml.safe_load((model_dir / "model-config.yaml").read_text()) or {}
    except yaml.YAMLError as exc:
        raise ArchiveError(f"{model_dir / 'model-config.yaml'} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ArchiveError(f"{model_dir / 'model-config.yaml'} must be a mapping")
    return name, config


def check_settings(model_dir: Path, config: dict) -> modelconfig.ModelSettings:
    """The twinserve: section, checked against the handlers, reference statistics and golden set."""
    where = model_dir / "model-config.yaml"
    artifacts = model_dir / "artifacts"
    try:
        settings = modelconfig.parse(config.get("twinserve"), model_dir)
        reference = json.loads((artifacts / "reference_stats.json").read_text())
        known = {*reference, *reference_columns(artifacts)}  # reference_data.npz's columns are sketched too
        unknown = [f for f in settings.drift_features if f not in known]
        if unknown:
            raise ModelConfigError(
                f"twinserve.drift_features names {unknown[0]!r}, which neither reference_stats.json nor "
                f"reference_data.npz has (they have {sorted(known)}; artifacts from an older train.py? run it again)"
            )
        golden.check(json.loads((artifacts / "golden_set.json").read_text()), settings.golden)
    except ModelConfigError as exc:
        raise ArchiveError(f"{where}: {exc}") from None
    except ValueError as exc:
        raise ArchiveError(f"{artifacts}: not valid JSON ({exc})") from None
    handler_files(settings.handler)
    return settings


_STAGING = threading.Lock()


@contextlib.contextmanager
def _private_staging(path: Path):
    """torch-model-archiver copies a model's files into <tempdir>/<model name> and deletes that folder
    first: two builds of one model at once (a pipeline and a benchmark, say) broke each other there
    (FileNotFoundError for the handler). Its temp dir is pointed at `path`, private to this build,
    for the call; the lock keeps threads of one process from sharing the setting."""
    path.mkdir()
    with _STAGING:
        saved, tempfile.tempdir = tempfile.tempdir, str(path)
        try:
            yield
        finally:
            tempfile.tempdir = saved


def build_archive(model_dir: Path, version: str, store: Path) -> BuiltArchive:
    """Build one versioned archive and its metadata.

    Args:
        model_dir: the model directory (model.py, model-config.yaml, artifacts/).
        version: the version to stamp, e.g. "1.0"; must not exist in the store yet.
        store: the local model store the archive goes into.
    Returns:
        Where the archive and its metadata were written, and the archive's sha256.
    Raises:
        ArchiveError: missing or invalid inputs, or the version already exists.
    """
    from model_archiver.model_archiver_config import ModelArchiverConfig
    from model_archiver.model_packaging import generate_model_archive

    model_dir = Path(model_dir)
    name, config = _check_inputs(model_dir, version)
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    target = archive_path(store, name, version)
    if target.exists() or metadata_path(target).exists():
        raise ArchiveExists(f"{target} already exists; archives are immutable, pick a new version")

    artifacts = model_dir / "artifacts"
    settings = check_settings(model_dir, config)
    handler, modules = handler_files(settings.handler)
    extras = [artifacts / "reference_stats.json", artifacts / "golden_set.json"]
    extras += [artifacts / a for a in OPTIONAL_ARTIFACTS if (artifacts / a).is_file()]
    try:
        reference = reference_stats(
            artifacts, json.loads((artifacts / "reference_stats.json").read_text()), settings.drift_features
        )
    except ReferenceError as exc:
        raise ArchiveError(str(exc)) from None
    model_files = sorted(p for p in (artifacts / MODEL_FILES).glob("*") if p.is_file())
    extras += model_files
    with tempfile.TemporaryDirectory(dir=store) as tmp, _private_staging(Path(tmp) / "staging"):
        generate_model_archive(
            ModelArchiverConfig(
                model_name=name,
                handler=str(handler),
                version=version,
                serialized_file=str(artifacts / "weights.pt"),
                model_file=str(model_dir / "model.py"),
                extra_files=",".join(str(p) for p in [*modules, *extras]),
                config_file=str(model_dir / "model-config.yaml"),
                export_path=tmp,
            )
        )
        built = Path(tmp) / f"{name}.mar"
        digest = sha256_of(built)
        metadata = {
            "model_name": name,
            "version": version,
            "archive": target.name,
            "sha256": digest,
            "git_commit": _git_commit(),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "reference_stats": reference,  # with KLL sketches of the watched features: archiver/reference.py
            "golden_set": json.loads((artifacts / "golden_set.json").read_text()),
            "metrics": _read_json(artifacts / "metrics.json"),
            "files": [p.name for p in model_files],  # artifacts/files/*, packed beside the weights
            "handler": config.get("handler", {}),
            "twinserve": settings.to_metadata(),
            "torchserve": {k: v for k, v in config.items() if k not in ("handler", "twinserve")},
        }
        meta_tmp = Path(tmp) / "metadata.json"
        meta_tmp.write_text(json.dumps(metadata, indent=2) + "\n")
        # Metadata first, archive last: an archive in the store always has its metadata.
        shutil.move(meta_tmp, metadata_path(target))
        shutil.move(built, target)
    return BuiltArchive(name, version, target, metadata_path(target), digest)
