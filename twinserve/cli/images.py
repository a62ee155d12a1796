"""Build the compose stack's images from Debian bookworm, no registry needed (BASE_IMAGE=... to choose the base).

Installs Docker Engine and debootstrap if missing; needs a running engine.
"""

import os
import sys
from pathlib import Path


def arguments(parser) -> None:
    from twinserve.compose.images import DEFAULT_BASE

    base = os.environ.get("BASE_IMAGE") or DEFAULT_BASE
    parser.add_argument("--base", default=base, help=f"a Debian bookworm image (default: $BASE_IMAGE or {base})")
    parser.add_argument("--pip", default=str(Path(sys.executable).parent / "pip"), help="the host's pip")


def run(args) -> None:
    from twinserve.compose.images import build_images

    build_images(args.base, args.pip)
