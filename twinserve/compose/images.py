"""`twinserve images`: the compose stack's images, built from Debian bookworm without a container registry.

Three images, each FROM one Debian base (build argument BASE_IMAGE):

    twinserve:0.1.0             Python 3.11, OpenJDK 17, TorchServe and the pinned packages: both colours,
                                the control plane, the exporter, the alert receiver, the drift consumer, the broker
    twinserve-nginx:0.1.0       Debian's Nginx with its Lua module, the repository's nginx/ folder and the
                                compose rendering of its template
    twinserve-monitoring:0.1.0  Debian's Prometheus, Alertmanager, node and Nginx exporters

The base is BASE_IMAGE if Docker has it or can pull it (default debian:bookworm-slim); otherwise
it is made here with `debootstrap --variant=minbase bookworm` and `docker import`d as DEBOOTSTRAP_TAG.
Python packages come from a wheelhouse the host's pip fills (it knows where packages come from
here; pip inside a build does not), at the versions pyproject.toml pins; the build installs
from it with --no-index. Caches live under $TWINSERVE_CACHE (/var/cache/twinserve), outside
the repository.

    twinserve images [--base IMAGE] [--pip PIP]
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

from twinserve.errors import ServiceError
from twinserve.settings import project_dir

CACHE = Path(os.environ.get("TWINSERVE_CACHE", "/var/cache/twinserve"))
DEFAULT_BASE = "debian:bookworm-slim"
DEBOOTSTRAP_TAG = "twinserve-base:bookworm"
VERSION = "0.1.0"
# The packages that are not needed in the image: the benchmark's peers and the test tools.
NOT_IN_IMAGE = ("pytest", "ruff", "import-linter", "fastapi", "uvicorn")
# What a container image of Debian leaves out (as the debian:*-slim images do) and
# keeps daemons from starting inside a build.
POLICY_RC_D = "#!/bin/sh\nexit 101\n"
APT_SLIM = 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
SOURCES = (
    "deb http://deb.debian.org/debian bookworm main\n"
    "deb http://deb.debian.org/debian bookworm-updates main\n"
    "deb http://deb.debian.org/debian-security bookworm-security main\n"
)


def install_missing() -> None:
    """Debian's Docker Engine and debootstrap, if this machine lacks them (as scripts/install.sh does)."""
    tools = {"dockerd": "docker.io", "debootstrap": "debootstrap"}
    missing = [package for tool, package in tools.items() if not shutil.which(tool)]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], stdout=subprocess.DEVNULL)


def pins(pyproject: Path | None = None) -> tuple[list[str], list[str]]:
    """(torch pins, the other pins) the image installs: the project's dependencies and Locust
    (default: the pyproject.toml of the project directory, a checkout)."""
    project = tomllib.loads((pyproject or project_dir() / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    wanted = [p for p in wanted if re.split(r"[\[=<>~ ]", p, maxsplit=1)[0] not in NOT_IN_IMAGE]
    return [p for p in wanted if p.startswith("torch==")], [p for p in wanted if not p.startswith("torch==")]


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(argv), flush=True)
    done = subprocess.run(argv, **kwargs)
    if done.returncode != 0:
        raise ServiceError(f"{argv[0]} {argv[1]} exited with status {done.returncode} (its output is above)")
    return done


def has_image(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def ensure_base(base: str) -> str:
    """The base image to build FROM: `base` if present or pullable, else a debootstrapped bookworm."""
    if has_image(base):
        print(f"base: {base} (already in Docker)")
        return base
    pulled = subprocess.run(["docker", "pull", base], capture_output=True, text=True)
    if pulled.returncode == 0:
        print(f"base: {base} (pulled)")
        return base
    if base != DEFAULT_BASE:
        raise ServiceError(f"cannot pull BASE_IMAGE={base}: {pulled.stderr.strip()}")
    reason = pulled.stderr.strip().splitlines()[-1].split(": ")[-1] if pulled.stderr.strip() else "no registry"
    if has_image(DEBOOTSTRAP_TAG):
        print(f"base: {DEBOOTSTRAP_TAG} (made earlier with debootstrap; {base} cannot be pulled: {reason})")
        return DEBOOTSTRAP_TAG
    print(f"base: {DEBOOTSTRAP_TAG}, made now with debootstrap ({base} cannot be pulled: {reason})")
    start = time.monotonic()
    make_debootstrap_base(DEBOOTSTRAP_TAG)
    print(f"base: {DEBOOTSTRAP_TAG} made in {time.monotonic() - start:.0f} s")
    return DEBOOTSTRAP_TAG


def make_debootstrap_base(tag: str) -> None:
    """debootstrap a minimal bookworm, slim it as Debian's container images are, import it."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="rootfs-") as tmp:
        rootfs = Path(tmp)
        run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs)], stdout=subprocess.DEVNULL)
        (rootfs / "usr/sbin/policy-rc.d").write_text(POLICY_RC_D)
        (rootfs / "usr/sbin/policy-rc.d").chmod(0o755)
        (rootfs / "etc/apt/apt.conf.d/90twinserve-slim").write_text(APT_SLIM)
        (rootfs / "etc/apt/sources.list").write_text(SOURCES)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(["docker", "import", "-", tag], stdin=tar.stdout, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise ServiceError("tar of the debootstrap root failed")


def fill_wheelhouse(pip: str, wheelhouse: Path) -> None:
    """torch and its dependencies in wheelhouse/torch, everything else in wheelhouse/app (separate image layers)."""
    torch, others = pins()
    for folder, wanted in (("torch", torch), ("app", others)):
        target = wheelhouse / folder
        target.mkdir(parents=True, exist_ok=True)
        (target / "requirements.txt").write_text("\n".join(wanted) + "\n")
        run([pip, "wheel", "-q", "--wheel-dir", str(target), "-r", str(target / "requirements.txt")])
    # Wheels pip needs anyway (a venv's pip and setuptools come from the image's Python).
    torch_wheels = {p.name for p in (wheelhouse / "torch").glob("*.whl")}
    for duplicate in (wheelhouse / "app").glob("*.whl"):
        if duplicate.name in torch_wheels:
            duplicate.unlink()


def build(image: str, dockerfile: Path, context: Path, base: str) -> float:
    start = time.monotonic()
    argv = ["docker", "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}", "-t", image]
    run([*argv, "-f", str(dockerfile), str(context)])
    return time.monotonic() - start


def image_size(image: str) -> str:
    size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", image], capture_output=True, text=True)
    return f"{int(size.stdout) / 1e6:.0f} MB" if size.returncode == 0 else "?"


def build_images(base: str, pip: str) -> None:
    """Every image of the compose stack FROM `base` (made with debootstrap if it cannot be had), pip's wheels."""
    root = project_dir()  # the Dockerfiles and pyproject.toml of the checkout
    install_missing()
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        raise ServiceError("no Docker Engine answers; start one: `dockerd &` (or systemctl)")
    start = time.monotonic()
    base = ensure_base(base)
    wheelhouse = CACHE / "wheelhouse"
    filled = time.monotonic()
    fill_wheelhouse(pip, wheelhouse)
    print(f"wheelhouse: {wheelhouse} filled in {time.monotonic() - filled:.0f} s")
    contexts = {"twinserve": wheelhouse, "nginx": root, "monitoring": root / "compose" / "monitoring"}
    took = {}
    for name, context in contexts.items():
        image = f"twinserve:{VERSION}" if name == "twinserve" else f"twinserve-{name}:{VERSION}"
        took[image] = build(image, root / "compose" / name / "Dockerfile", context, base)
    for image, seconds in took.items():
        print(f"{image:28} {image_size(image):>8}  built in {seconds:.0f} s")
    print(f"images: from {base} in {time.monotonic() - start:.0f} s")
