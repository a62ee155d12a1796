"""twinserve's command line: each verb calls one function of the control plane.

    up, down, status   twinserve.runtime.stack
    deploy [source]    twinserve.release.deploy (a model dir, an archive or a model's name)
    swap, rollback [model]   twinserve.release.promote, one model (default: the default model)
    which [model|--all]      twinserve.release.promote
    render-compose     twinserve.compose.configs (Nginx, Prometheus, Alertmanager files of the compose stack)

A failure prints one line, `twinserve <verb>: error: ...`, and exits non-zero:
a TwinserveError with its own exit code, and any error of the system, the broker
or a socket that a command did not turn into one (an operator needs the what and
why, not a traceback).
"""

import argparse
import contextlib
import sys
from pathlib import Path

import psutil
import requests
from kafka.errors import KafkaError

from twinserve.compose import configs as compose
from twinserve.errors import EXIT_FAILED, ConfigError, TwinserveError
from twinserve.release import deploy, promote
from twinserve.runtime import stack
from twinserve.settings import load_stack
from twinserve.store.state import exclusive


def _up(s, args):
    started = stack.up(s)
    print(f"started: {', '.join(started) or 'nothing (already running)'}")
    print("\n".join(stack.urls(s)))
    print(promote.which(s))


def _deploy(s, args):
    print(deploy.deploy(s, _source(s, args.source), args.version))


def _source(s, source: Path | None) -> Path:
    """A model directory or archive; a model's name (or nothing: the default model) is its directory."""
    if source is None:
        return s.models[s.default].dir
    if not source.exists() and str(source) in s.models:
        return s.models[str(source)].dir
    return source


def _which(s, args):
    if not args.all:
        print(promote.which(s, args.model))
        return
    lines, ok = promote.which_all(s)
    print("\n".join(lines))
    if not ok:
        raise ConfigError("a model has no valid production colour (its line says why)")


def _down(s, args):
    stopped = stack.down(s)
    print(f"stopped: {', '.join(stopped) or 'nothing (was not running)'}")


VERBS = {
    "up": (_up, "start the native stack (builds the demo archive if missing)"),
    "down": (_down, "stop everything `up` started"),
    "status": (lambda s, a: print("\n".join(stack.status(s))), "processes, colours and versions"),
    "deploy": (_deploy, "put a model version on its staging colour"),
    "swap": (lambda s, a: print(promote.swap(s, a.model)), "promote a model's staging colour to production"),
    "rollback": (lambda s, a: print(promote.rollback(s, a.model)), "return a model to its previous colour"),
    "which": (_which, "print which colour is a model's production (--all: every model's)"),
    "render-compose": (lambda s, a: print(compose.write_rendered()), "render the compose stack's configs"),
}


CHANGES = ("deploy", "swap", "rollback")  # one at a time, with the pipeline's deploy, smoke and promote


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twinserve", description="Blue/green TorchServe behind Nginx.")
    p.add_argument("--stack", type=Path, help="stack description (default: $TWINSERVE_STACK or config/stack.yaml)")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb, (_, help_text) in VERBS.items():
        sp = sub.add_parser(verb, help=help_text)
        if verb == "deploy":
            what = "an archive in model_store/, a model directory or a model's name (default: the default model)"
            sp.add_argument("source", type=Path, nargs="?", help=what)
            sp.add_argument("version", nargs="?", help="version to build from a model directory (default: next minor)")
        if verb in ("swap", "rollback", "which"):
            sp.add_argument("model", nargs="?", help="a model of the stack (default: the stack's default model)")
        if verb == "which":
            sp.add_argument("--all", action="store_true", help="one line per model")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_stack(args.stack)
        with exclusive(settings, f"twinserve {args.verb}") if args.verb in CHANGES else contextlib.nullcontext():
            VERBS[args.verb][0](settings, args)
    except TwinserveError as exc:
        print(f"twinserve {args.verb}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (OSError, KafkaError, requests.RequestException, psutil.Error) as exc:
        print(f"twinserve {args.verb}: error: {type(exc).__name__}: {exc}".rstrip(": "), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return 0
