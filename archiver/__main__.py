"""python -m archiver build MODEL_DIR --version V [--store DIR]"""

import argparse
import sys
from pathlib import Path

from archiver.build import ArchiveError, build_archive, project_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m archiver", description="Build versioned model archives.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="pack a model directory into <store>/<name>-<version>.mar")
    build.add_argument("model_dir", type=Path)
    build.add_argument("--version", required=True)
    build.add_argument("--store", type=Path, help="default: model_store/ of the project ($TWINSERVE_HOME or here)")
    args = parser.parse_args(argv)
    args.store = args.store or project_root() / "model_store"
    try:
        built = build_archive(args.model_dir, args.version, args.store)
    except ArchiveError as exc:
        print(f"archiver: error: {exc}", file=sys.stderr)
        return 2
    print(f"{built.path} sha256={built.sha256}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
