"""The `twinserve:` section of a model's model-config.yaml: what twinserve needs to know about a model.

TorchServe reads the top-level keys, the handler reads `handler:`; this section is
read by twinserve alone, so that nothing model-specific lives in the control plane:

    handler         the model kind: handlers/<handler>_handler.py (default: tabular)
    max_body        the largest request body the model takes, in bytes
    golden          how the smoke test compares an answer with the golden set:
                      {compare: numbers, tolerance: 1e-5[, batch: true]}  every number within
                          tolerance × max(1, |golden|); batch: the rows also go as one request
                      {compare: label, probability_tolerance: 1e-4}  the label exactly, each
                          class's probability within the tolerance
    samples         request bodies for smoke and load tests, each one of
                      {json: <a JSON value>}
                      {file: samples/x.png, content_type: image/png}
                      {files: "samples/*.png", content_type: image/png}  (sorted, at least one)
    drift_features  the input features the drift detector watches (a subset of what the
                    kind publishes; each needs reference statistics)
    deterministic   true if an answer is a pure function of the request (same bytes in, same
                    bytes out, whatever shares its batch): Nginx then caches its answers
    cache           true or false: caches the model's answers or not, whatever deterministic says

parse() checks a raw section and raises ModelConfigError with one line naming the key;
the archiver writes the result into the archive's metadata (samples read into it:
`to_metadata`), and the control plane reads it back from there (`from_metadata`).
Pure: no torch, no TorchServe, no twinserve.
"""

import base64
import glob
import json
import math
from dataclasses import dataclass
from pathlib import Path

DEFAULT_KIND = "tabular"  # a model-config.yaml without twinserve.handler
JSON = "application/json"
COMPARE = ("numbers", "label")
KEYS = ("handler", "max_body", "golden", "samples", "drift_features", "deterministic", "cache")
OPTIONAL = ("handler", "deterministic", "cache")


class ModelConfigError(ValueError):
    """A twinserve: section that cannot be used; the message names the key. A configuration error:
    exit 2 from `twinserve`'s one error handler, as ArchiveError's codes are."""

    exit_code = 2


@dataclass(frozen=True)
class Payload:
    """One request body: its bytes and content type (a sample, or a golden input)."""

    name: str
    content_type: str
    body: bytes

    def to_dict(self) -> dict:
        """JSON-able: JSON bodies as themselves (readable in the metadata), others in base64."""
        if self.content_type == JSON:
            return {"name": self.name, "content_type": JSON, "json": json.loads(self.body)}
        return {"name": self.name, "content_type": self.content_type, "base64": base64.b64encode(self.body).decode()}

    @classmethod
    def from_dict(cls, raw: dict, name: str = "") -> "Payload":
        """The inverse of to_dict; raises ModelConfigError on anything else."""
        if not isinstance(raw, dict):
            raise ModelConfigError(f"{name or 'a payload'} is not a mapping")
        name = str(raw.get("name", name))
        if "json" in raw:
            return cls(name, JSON, json.dumps(raw["json"]).encode())
        content_type = raw.get("content_type")
        if not isinstance(content_type, str) or "/" not in content_type or "base64" not in raw:
            raise ModelConfigError(f"{name}: expected json: <value>, or content_type: <type/subtype> with base64:")
        try:
            return cls(name, content_type, base64.b64decode(raw["base64"], validate=True))
        except (ValueError, TypeError):
            raise ModelConfigError(f"{name}: base64 is not valid base64") from None


@dataclass(frozen=True)
class GoldenRule:
    compare: str  # "numbers" or "label"
    tolerance: float  # numbers: relative to max(1, |golden|); label: absolute, per probability
    batch: bool = False  # numbers: also replay every input as one request of rows

    def to_dict(self) -> dict:
        if self.compare == "numbers":
            return {"compare": "numbers", "tolerance": self.tolerance, "batch": self.batch}
        return {"compare": "label", "probability_tolerance": self.tolerance}


@dataclass(frozen=True)
class ModelSettings:
    handler: str
    max_body: int
    golden: GoldenRule
    samples: tuple[Payload, ...]
    drift_features: tuple[str, ...]

    def to_metadata(self) -> dict:
        """The section as the archive's metadata carries it: the samples' bodies included."""
        return {
            "handler": self.handler,
            "max_body": self.max_body,
            "golden": self.golden.to_dict(),
            "samples": [s.to_dict() for s in self.samples],
            "drift_features": list(self.drift_features),
        }


def _tolerance(raw: dict, key: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ModelConfigError(f"twinserve.golden.{key} is {value!r}; expected a number ≥ 0")
    return float(value)


def parse_golden(raw) -> GoldenRule:
    if not isinstance(raw, dict) or raw.get("compare") not in COMPARE:
        shown = raw.get("compare") if isinstance(raw, dict) else raw
        raise ModelConfigError(f"twinserve.golden.compare is {shown!r}; expected one of {list(COMPARE)}")
    known = {"numbers": {"compare", "tolerance", "batch"}, "label": {"compare", "probability_tolerance"}}
    unknown = sorted(set(raw) - known[raw["compare"]])
    if unknown:
        raise ModelConfigError(f"twinserve.golden.{unknown[0]} is not a key of compare: {raw['compare']}")
    if raw["compare"] == "label":
        return GoldenRule("label", _tolerance(raw, "probability_tolerance"))
    batch = raw.get("batch", False)
    if not isinstance(batch, bool):
        raise ModelConfigError(f"twinserve.golden.batch is {batch!r}; expected true or false")
    return GoldenRule("numbers", _tolerance(raw, "tolerance"), batch)


def _files(entry: dict, where: str, model_dir: Path) -> list[Path]:
    pattern = entry.get("file", entry.get("files"))
    if not isinstance(pattern, str) or not pattern or Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise ModelConfigError(f"{where} is {pattern!r}; expected a path inside the model directory")
    if "file" in entry:
        paths = [model_dir / pattern] if (model_dir / pattern).is_file() else []
    else:
        paths = sorted(Path(p) for p in glob.glob(str(model_dir / pattern)) if Path(p).is_file())
    if not paths:
        raise ModelConfigError(f"{where}: no file {pattern} in {model_dir}")
    return paths


def parse_samples(raw, model_dir: Path, max_body: int) -> tuple[Payload, ...]:
    """Every sample's bytes and content type; files are read from the model directory."""
    if not isinstance(raw, list) or not raw:
        raise ModelConfigError("twinserve.samples must be a non-empty list of {json: ...} or {file(s):, content_type:}")
    samples = []
    for i, entry in enumerate(raw):
        where = f"twinserve.samples[{i}]"
        if not isinstance(entry, dict) or len({"json", "file", "files"} & set(entry)) != 1:
            raise ModelConfigError(f"{where} must have exactly one of json:, file:, files:")
        if "json" in entry:
            samples.append(Payload(f"json-{i}", JSON, json.dumps(entry["json"]).encode()))
            continue
        key = "file" if "file" in entry else "files"
        content_type = entry.get("content_type")
        if not isinstance(content_type, str) or "/" not in content_type:
            raise ModelConfigError(f"{where}.content_type is {content_type!r}; expected e.g. image/png")
        for path in _files(entry, f"{where}.{key}", model_dir):
            samples.append(Payload(path.name, content_type, path.read_bytes()))
    for sample in samples:
        if len(sample.body) > max_body:
            raise ModelConfigError(f"twinserve.samples: {sample.name} is {len(sample.body)} bytes, over max_body")
    return tuple(samples)


def parse(raw, model_dir: Path) -> ModelSettings:
    """Check a model-config.yaml's twinserve: section and read its samples.

    Args:
        raw: the section as YAML loaded it (None when absent).
        model_dir: where sample files are looked up.
    Raises:
        ModelConfigError: one line, naming the key that is wrong.
    """
    if not isinstance(raw, dict):
        raise ModelConfigError(f"twinserve: is {type(raw).__name__}; expected a mapping with {', '.join(KEYS)}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ModelConfigError(f"twinserve.{unknown[0]} is not a twinserve key; expected some of {', '.join(KEYS)}")
    required = [k for k in KEYS if k not in OPTIONAL]
    missing = [k for k in required if k not in raw]
    if missing:
        raise ModelConfigError(f"twinserve.{missing[0]} is missing (twinserve: needs {', '.join(required)})")
    for flag in ("deterministic", "cache"):
        if flag in raw and not isinstance(raw[flag], bool):
            raise ModelConfigError(f"twinserve.{flag} is {raw[flag]!r}; expected true or false")
    handler = raw.get("handler", DEFAULT_KIND)
    if not isinstance(handler, str):
        raise ModelConfigError(f"twinserve.handler is {handler!r}; expected a kind name, e.g. tabular")
    max_body = raw["max_body"]
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body <= 0:
        raise ModelConfigError(f"twinserve.max_body is {max_body!r}; expected a number of bytes > 0")
    features = raw["drift_features"]
    if not isinstance(features, list) or not all(isinstance(f, str) and f for f in features):
        raise ModelConfigError(f"twinserve.drift_features is {features!r}; expected a list of feature names")
    if len(set(features)) != len(features):
        raise ModelConfigError(f"twinserve.drift_features names a feature twice: {features}")
    return ModelSettings(
        handler=handler,
        max_body=max_body,
        golden=parse_golden(raw["golden"]),
        samples=parse_samples(raw["samples"], Path(model_dir), max_body),
        drift_features=tuple(features),
    )


def from_metadata(meta: dict) -> ModelSettings:
    """The section as an archive's metadata carries it (written by ModelSettings.to_metadata)."""
    raw = meta.get("twinserve")
    if not isinstance(raw, dict) or "samples" not in raw or "golden" not in raw:
        name = f"{meta.get('model_name', '?')} {meta.get('version', '?')}"
        raise ModelConfigError(f"the metadata of {name} has no twinserve: samples and golden rule; archive it again")
    return ModelSettings(
        handler=raw.get("handler", DEFAULT_KIND),
        max_body=int(raw["max_body"]),
        golden=parse_golden(raw["golden"]),
        samples=tuple(Payload.from_dict(s, f"samples[{i}]") for i, s in enumerate(raw["samples"])),
        drift_features=tuple(raw.get("drift_features", ())),
    )


def load(model_dir: Path) -> ModelSettings:
    """The twinserve: section of a model directory's model-config.yaml, checked."""
    import yaml

    path = Path(model_dir) / "model-config.yaml"
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ModelConfigError(f"{path} cannot be read: {exc}") from None
    if not isinstance(config, dict):
        raise ModelConfigError(f"{path} must be a mapping")
    return parse(config.get("twinserve"), Path(model_dir))
