"""`twinserve <verb>`: every user command, one module per verb, one error handler.

Each verb is a module of this package with a docstring (its first line is the
verb's help), `arguments(parser)`, which only declares the verb's arguments,
and `run(args)`, which calls the control plane and returns an exit code
(None: 0). VERBS below is the registry; `twinserve --help` lists it.

`main` is the one place that turns an error into its message and exit code:
whatever a verb raises (a TwinserveError, the archiver's ArchiveError, an error
of the system, a socket, the broker or psutil that no verb turned into one)
and a command line that does not parse, it prints ONE line,

    twinserve <verb>: error: <what and why>

and exits with the error's code (twinserve/errors.py documents them: 0 ok,
1 refused or failed and nothing changed, 2 usage or configuration; the pipeline
adds 3). No traceback: an operator needs the what and the why; a bug of the
control plane itself (any other exception) still shows its traceback.

This package is the top layer: it may import every other twinserve package and
the developer tools (twinserve/tools: bench, swapcheck), which nothing below it
imports. Verb modules import the control plane inside `run`, so that
`twinserve --help` and a container's healthcheck stay quick.
"""

import argparse
import sys
from importlib import import_module
from pathlib import Path

import psutil
import requests
from kafka.errors import KafkaError

from archiver.build import ArchiveError
from archiver.modelconfig import ModelConfigError
from twinserve.errors import EXIT_FAILED, EXIT_INTERRUPTED, TwinserveError, UsageError

PROG = "twinserve"
VERBS = {  # verb: its module in twinserve/cli/, in the order --help lists them
    "up": "up",
    "down": "down",
    "status": "status",
    "deploy": "deploy",
    "swap": "swap",
    "rollback": "rollback",
    "which": "which",
    "archive": "archive",
    "pipeline": "pipeline",
    "loadtest": "loadtest",
    "swapcheck": "swapcheck",
    "bench": "bench",
    "drift-demo": "drift_demo",
    "drift-eval": "drift_eval",
    "render-compose": "render_compose",
    "render-kube": "render_kube",
    "k8s-validate": "k8s_validate",
    "images": "images",
    "serve": "serve",
    "container": "container",
    "health": "health",
}
EXIT_CODES = "exit codes: 0 done; 1 refused or failed, nothing changed; 2 usage or configuration; 130 interrupted"
KNOWN = (TwinserveError, ArchiveError, ModelConfigError)  # errors that carry their own exit code
# Errors of what the control plane talks to, that a verb did not turn into a TwinserveError: one line, exit 1.
SYSTEM = (OSError, KafkaError, requests.RequestException, psutil.Error)


class Parser(argparse.ArgumentParser):
    """argparse, whose errors become a UsageError for `main` to print (argparse would print usage + exit)."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def verb_module(verb: str):
    return import_module(f"twinserve.cli.{VERBS[verb]}")


def parser() -> Parser:
    p = Parser(
        prog=PROG,
        description="Blue/green TorchServe behind Nginx: every command of the stack.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--stack", type=Path, help="stack description (default: $TWINSERVE_STACK or config/stack.yaml)")
    sub = p.add_subparsers(dest="verb", required=True, metavar="<verb>", parser_class=Parser)
    for verb in VERBS:
        module = verb_module(verb)
        summary = module.__doc__.strip().splitlines()[0]
        raw = argparse.RawDescriptionHelpFormatter
        module.arguments(sub.add_parser(verb, help=summary, description=module.__doc__.strip(), formatter_class=raw))
    return p


def one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def fail(verb: str | None, exc: BaseException) -> int:
    """Print `twinserve <verb>: error: ...` for `exc`, return its exit code."""
    where = f"{PROG} {verb}" if verb else PROG
    if isinstance(exc, KNOWN):
        text, code = str(exc), exc.exit_code
    else:  # named by its type: "OSError: [Errno 98] ..." (Kafka's errors name themselves already)
        name, text, code = type(exc).__name__, str(exc), EXIT_FAILED
        text = text if text.startswith(name) else f"{name}: {text}".rstrip(": ")
    print(f"{where}: error: {one_line(text)}", file=sys.stderr)
    return code


def _verb_in(argv: list[str]) -> str | None:
    """The verb of a command line that did not parse, if it names one."""
    return next((a for a in argv if a in VERBS), None)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = None
    try:
        args = parser().parse_args(argv)
        verb = args.verb
        code = verb_module(verb).run(args)
    except (*KNOWN, *SYSTEM) as exc:  # a command line that did not parse is a UsageError: no verb parsed yet
        return fail(verb or _verb_in(argv), exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code or 0
