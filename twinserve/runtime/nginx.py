"""Nginx in front of both colours: its process and the production switch.

The switch (PUT/GET /production on the loopback admin server) takes the
admin token from the state dir; only the control plane (root) reads it.
"""

import shutil
import subprocess

import requests

from twinserve.errors import ServiceError
from twinserve.runtime import processes, torchserve
from twinserve.runtime.render import log_dir, nginx_dir, render_nginx
from twinserve.settings import Stack
from twinserve.store.state import read_admin_token

PROCESS = "nginx"


def nginx_bin() -> str:
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    return path


def write_config(stack: Stack):
    """Render nginx.conf and have Nginx check it; a bad config never starts."""
    home = nginx_dir(stack)
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    log_dir(stack).mkdir(parents=True, exist_ok=True)
    conf = home / "nginx.conf"
    conf.write_text(render_nginx(stack))
    check = subprocess.run(
        [nginx_bin(), "-t", "-q", "-p", str(home), "-c", str(conf), "-e", str(log_dir(stack) / "error.log")],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise ServiceError(f"nginx rejected {conf}: {check.stderr.strip().splitlines()[-1:]}")
    return conf


def start(stack: Stack) -> int:
    conf = write_config(stack)
    home = nginx_dir(stack)
    argv = [nginx_bin(), "-p", str(home), "-c", str(conf), "-e", str(log_dir(stack) / "error.log"), "-g", "daemon off;"]
    return processes.start(stack, PROCESS, argv, home, {}, log_dir(stack) / "nginx-stdout.log")


def stop(stack: Stack) -> bool:
    return processes.stop(stack, PROCESS)


def wait_ready(stack: Stack, timeout: float = 20.0) -> None:
    alive = lambda: processes.running_pid(stack, PROCESS) is not None  # noqa: E731
    processes.wait_http(f"{stack.nginx.admin_url}/stub_status", timeout, alive=alive)


def _admin(stack: Stack, method: str, data: str | None = None, path: str = "/production", **params):
    headers = {"Authorization": f"Bearer {read_admin_token(stack)}"}
    url = f"{stack.nginx.admin_url}{path}"
    try:
        response = requests.request(method, url, data=data, params=params, headers=headers, timeout=5)
    except requests.RequestException as exc:
        raise ServiceError(f"nginx admin endpoint unreachable: {type(exc).__name__}") from None
    if response.status_code == 401:
        raise ServiceError(
            "nginx refused the admin token (401): Nginx holds another token than the state dir; restart Nginx"
        )
    return response


def get_production(stack: Stack, model: str | None = None) -> str | None:
    """The colour Nginx routes /predict/<model> to right now (default: the default model's);
    None while it has none (it answers 503)."""
    response = _admin(stack, "GET", model=stack.model(model))
    try:
        response.raise_for_status()
        return response.json()["production"]
    except (requests.RequestException, ValueError, KeyError):
        raise ServiceError(f"nginx admin endpoint: HTTP {response.status_code} {response.text.strip()}") from None


def set_production(stack: Stack, colour: str, model: str | None = None) -> None:
    """Flip /predict/<model> (default: the default model's) to `colour` without a reload: no
    connection is dropped, and no other model's entry changes."""
    model = stack.model(model)
    response = _admin(stack, "PUT", colour, model=model)
    try:
        switched = response.status_code == 200 and response.json().get("production") == colour
    except ValueError:
        switched = False
    if not switched:
        raise ServiceError(
            f"nginx refused the switch of {model} to {colour}: HTTP {response.status_code} {response.text.strip()}"
        )


def publish_keys(stack: Stack) -> list[str]:
    """Give Nginx each running colour's current TorchServe inference key; returns the colours.

    Needed after every TorchServe (re)start: the new process writes new keys, and
    until Nginx has the new one, that colour's answers through Nginx are 503s.
    """
    published = []
    for colour in stack.colours if stack.torchserve.token_auth else ():
        try:
            key = torchserve.read_key(stack, colour, "inference")
        except ServiceError:
            continue  # not running: nothing to publish
        response = _admin(stack, "PUT", key, "/inference-key", colour=colour)
        if response.status_code != 200:
            raise ServiceError(f"nginx refused {colour}'s key: HTTP {response.status_code} {response.text.strip()}")
        published.append(colour)
    return published
