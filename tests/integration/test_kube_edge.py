"""The one piece of the Kubernetes edge that runs here: Nginx's upstream with the keep-alive lifetime the
Kubernetes rendering adds (twinserve/kube/render.py: edge_conf, docs/kubernetes.md).

On Kubernetes each colour's upstream is a Service's stable ClusterIP, and only a new connection can reach
a new pod or leave a terminating one. The design relies on Debian's Nginx closing each upstream keep-alive
connection once it is `keepalive_time` old, between requests, so that (1) under steady keep-alive load
the connections to the colour are renewed every lifetime, and (2) renewing them loses no request. Both
are checked with real Nginx and a counting HTTP/1.1 backend standing in for the Service (kube-proxy and
TorchServe are not here: what TorchServe does with a connection is irrelevant to when Nginx closes it).
"""

import dataclasses
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.checkout import REPO_ROOT
from tests.integration.helpers import poll
from tests.ports import free_ports
from twinserve.kube.render import KUBE_STACK, edge_conf, load

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed (make install)"),
]
STACK, _, KUBE = load(REPO_ROOT / KUBE_STACK)
CLIENTS, SECONDS = 4, 6.0


class Backend(ThreadingHTTPServer):
    """Counts the connections Nginx opens to it and the requests it answers."""

    daemon_threads = True

    def __init__(self, port: int):
        self.connections = self.requests = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.requests += 1
        body = b'{"output": 0.5}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def upstream(lifetime_seconds: int | None, backend_port: int) -> str:
    """The blue upstream block as the Kubernetes rendering writes it, with `lifetime_seconds` (None: the
    native rendering's block, no lifetime), pointed at the backend."""
    kube = dataclasses.replace(KUBE, upstream_keepalive_seconds=lifetime_seconds or 1)
    block = re.search(r"upstream blue \{.*?\}", edge_conf(STACK, kube), re.S).group(0)
    if lifetime_seconds is None:
        block = re.sub(r"\s*keepalive_time \d+s;", "", block)
    return re.sub(r"server \S+;", f"server 127.0.0.1:{backend_port};", block)


def run(tmp_path, lifetime_seconds: int | None) -> dict:
    """CLIENTS keep-alive clients through Nginx for SECONDS; what they got and what the backend saw."""
    nginx_port, backend_port = free_ports(2)
    backend = Backend(backend_port)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    (tmp_path / "logs").mkdir(parents=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    {upstream(lifetime_seconds, backend_port)}
    server {{
        listen 127.0.0.1:{nginx_port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / {{ proxy_pass http://blue; }}
    }}
}}
""")
    proc = subprocess.Popen([shutil.which("nginx"), "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"])
    got = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def client():
        with requests.Session() as session:
            deadline = time.monotonic() + SECONDS
            while time.monotonic() < deadline:
                try:
                    ok = session.post(f"http://127.0.0.1:{nginx_port}/predict", json={"data": [0.2, 0.6]}, timeout=5).ok
                except requests.RequestException:
                    ok = False
                with lock:
                    got["ok" if ok else "failed"] += 1

    try:

        def up():
            try:
                return requests.post(f"http://127.0.0.1:{nginx_port}/", data=b"", timeout=2).ok
            except requests.RequestException:
                return False

        assert poll(up, timeout=30, every=0.2), (tmp_path / "logs" / "error.log").read_text()
        before = backend.connections, backend.requests
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(SECONDS + 30)
        return {**got, "connections": backend.connections - before[0], "answered": backend.requests - before[1]}
    finally:
        proc.terminate()
        proc.wait(30)
        backend.shutdown()
        backend.server_close()


def test_connections_to_a_colour_are_renewed_every_lifetime_and_no_request_is_lost(tmp_path):
    with_lifetime = run(tmp_path / "lifetime", lifetime_seconds=1)
    without = run(tmp_path / "native", lifetime_seconds=None)
    print(f"\nkeepalive_time 1s: {with_lifetime}\nno keepalive_time: {without}")
    for seen in (with_lifetime, without):
        assert seen["failed"] == 0 and seen["ok"] > 0, seen  # renewing a connection loses no request
        assert seen["answered"] == seen["ok"], seen  # nothing retried behind the client's back, nothing dropped
    # Each of Nginx's connections lives about a second: over SECONDS, several generations of them.
    assert with_lifetime["connections"] >= 3 * (SECONDS // 2), with_lifetime
    assert without["connections"] <= 2 * CLIENTS, without  # opened once, kept for the whole run
