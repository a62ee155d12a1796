"""Build a versioned archive (.mar) of a model directory, and its metadata, into the model store.

Archives are immutable: a version that exists is refused (exit 1), a bad model
directory or version is a usage error (exit 2).
"""

from pathlib import Path


def arguments(parser) -> None:
    parser.add_argument("model_dir", type=Path, help="e.g. models/regressor (trained: artifacts/ written)")
    parser.add_argument("--version", required=True, help="numbers separated by dots, e.g. 1.1")
    parser.add_argument("--store", type=Path, help="where to write it (default: the stack's model_store)")


def run(args) -> None:
    from archiver.build import build_archive
    from twinserve.settings import load_stack

    store = args.store or load_stack(args.stack).model_store
    built = build_archive(args.model_dir, args.version, store)
    print(f"{built.path} sha256={built.sha256}")
