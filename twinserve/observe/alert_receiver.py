"""A webhook receiver for Alertmanager that records what it receives.

Every alert of every notification is appended, one JSON object a line, to
<var_dir>/alerts/alerts.jsonl, so an operator (or the pipeline's bake step)
can read what fired and when. GET /alerts returns them, newest last;
?status=firing and ?alertname=X filter.

    twinserve serve alert-receiver       # natively (make up): on loopback
    twinserve container alert-receiver   # in compose: on all interfaces of its container

Listens on monitoring.alert_receiver_port.
"""

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from twinserve.settings import Stack

MAX_BODY = 1 << 20


def alerts_file(stack: Stack) -> Path:
    return stack.var_dir / "alerts" / "alerts.jsonl"


def flatten(notification: dict, received_at: str) -> list[dict]:
    """One record per alert of an Alertmanager webhook notification (version 4)."""
    if not isinstance(notification, dict) or not isinstance(notification.get("alerts"), list):
        raise ValueError('expected an Alertmanager notification with an "alerts" list')
    records = []
    for alert in notification["alerts"]:
        labels = alert.get("labels", {}) if isinstance(alert, dict) else None
        if not isinstance(labels, dict):
            raise ValueError("expected every alert to be an object, its labels an object")
        records.append({
            "received_at": received_at,
            "status": alert.get("status"),
            "alertname": labels.get("alertname"),
            "severity": labels.get("severity"),
            "labels": labels,
            "annotations": alert.get("annotations", {}),
            "startsAt": alert.get("startsAt"),
            "endsAt": alert.get("endsAt"),
        })  # fmt: skip
    return records


def read_alerts(path: Path, status: str | None = None, alertname: str | None = None) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    records = [json.loads(line) for line in lines if line.strip()]
    return [
        r for r in records
        if (status is None or r["status"] == status) and (alertname is None or r["alertname"] == alertname)
    ]  # fmt: skip


def make_handler(path: Path):
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if urlparse(self.path).path != "/alerts":
                return self._reply(404, {"error": "POST /alerts"})
            if length > MAX_BODY:
                return self._reply(413, {"error": f"notification over {MAX_BODY} bytes"})
            try:
                records = flatten(json.loads(self.rfile.read(length)), datetime.now(UTC).isoformat())
            except ValueError as exc:
                return self._reply(400, {"error": str(exc)})
            with lock:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a") as f:
                    f.writelines(json.dumps(r) + "\n" for r in records)
            return self._reply(200, {"recorded": len(records)})

        def do_GET(self):  # noqa: N802
            url = urlparse(self.path)
            if url.path == "/healthz":
                return self._reply(200, {"status": "ok"})
            if url.path != "/alerts":
                return self._reply(404, {"error": "GET /alerts or /healthz"})
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            return self._reply(200, read_alerts(path, query.get("status"), query.get("alertname")))

        def log_message(self, *args):
            pass

    return Handler


def serve(stack: Stack, host: str) -> ThreadingHTTPServer:
    """The receiver, bound to `host` and the stack's port; `run` is the service."""
    return ThreadingHTTPServer((host, stack.monitoring.alert_receiver_port), make_handler(alerts_file(stack)))


def run(stack: Stack, host: str) -> None:
    """The alert receiver's process: serve until killed."""
    serve(stack, host).serve_forever()
