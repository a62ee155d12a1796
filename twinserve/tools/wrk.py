"""Drive wrk (HTTP load generator) and read its report.

Used by the zero-downtime check and the benchmarks: same generator, same
payload, same parsing everywhere. parse_report is pure and unit-tested.
"""

import dataclasses
import re
import resource
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

POST_SCRIPT = """wrk.method = "POST"
wrk.body = '{"data": [0.2, 0.6]}'
wrk.headers["Content-Type"] = "application/json"
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def lua_string(data: bytes) -> str:
    """A Lua string literal of any bytes (PNG included): printable ASCII as itself, the rest as \\ddd."""
    out = []
    for byte in data:
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char not in '"\\' else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def repeating_script(repeated: list[bytes], others: list[bytes], share: float, content_type: str) -> str:
    """A wrk script POSTing one of `repeated` with probability `share`, else one of `others` (all of
    `content_type`): the workload of a response cache, where most requests repeat a few bodies."""
    first = ",\n".join(f"  {lua_string(b)}" for b in repeated)
    rest = ",\n".join(f"  {lua_string(b)}" for b in others)
    return f"""wrk.method = "POST"
wrk.headers["Content-Type"] = {lua_string(content_type.encode())}
local repeated = {{
{first}
}}
local others = {{
{rest}
}}
function request()
  local pool = math.random() < {share!r} and repeated or others
  return wrk.format(nil, nil, nil, pool[math.random(#pool)])
end
"""


def samples_script(samples: list[tuple[bytes, str]]) -> str:
    """A wrk script POSTing one of `samples` (body, content type) picked at random for every request.

    The requests are formatted once per thread (init), with wrk's headers (Host and those
    given to WrkRun) and the sample's own Content-Type.
    """
    bodies = ",\n".join(f"  {{{lua_string(body)}, {lua_string(kind.encode())}}}" for body, kind in samples)
    return f"""wrk.method = "POST"
local samples = {{
{bodies}
}}
local requests = {{}}
function init(args)
  for i, sample in ipairs(samples) do
    local headers = {{}}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    headers["Content-Type"] = sample[2]
    requests[i] = wrk.format("POST", nil, headers, sample[1])
  end
end
function request()
  return requests[math.random(#requests)]
end
"""


@dataclass(frozen=True)
class WrkReport:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int  # connect + read + write + timeout
    generator_cpu_s: float = 0.0  # CPU seconds wrk itself used (its cost on the same cores)

    @property
    def ok_rps(self) -> float:
        """Requests/s answered 2xx/3xx."""
        return self.rps * (1 - self.non_2xx / self.requests) if self.requests else 0.0


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not match:
        raise ValueError(f"not a wrk duration: {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_report(text: str) -> WrkReport:
    """Read wrk's --latency report; raises ValueError if it is not one."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if not (done and rps and p50 and p99):
        raise ValueError(f"not a wrk --latency report: {text[-300:]!r}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return WrkReport(
        requests=int(done.group(1)),
        seconds=_ms(done.group(2) + done.group(3)) / 1e3,
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in sockets.groups()) if sockets else 0,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class WrkRun:
    """wrk in the background against one URL until stop() (or its duration)."""

    def __init__(
        self,
        url: str,
        connections: int,
        threads: int = 2,
        duration_s: int = 600,
        headers=None,
        samples=None,
        body: bytes | None = None,
        content_type: str = "application/json",
        script: str | None = None,
    ):
        """`samples`: (body, content type) pairs, one picked at random per request; `body` (with its
        content type): that one body only; `script`: a wrk Lua script of its own; none of them: the
        tabular row of POST_SCRIPT."""
        if body is not None:
            samples = [(body, content_type)]
        threads = max(1, min(threads, connections))  # wrk refuses fewer connections than threads
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
            file.write(script or (samples_script(samples) if samples else POST_SCRIPT))
            for name, value in (headers or {}).items():
                file.write(f'wrk.headers["{name}"] = "{value}"\n')
        self._script = Path(file.name)
        argv = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--latency",
            "-s",
            str(self._script),
            url,
        ]
        self._cpu_before = _children_cpu()
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self, timeout: float = 30.0) -> WrkReport:
        """Stop wrk now (SIGINT makes it print its report) and parse the report."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float) -> WrkReport:
        """Wait for wrk to finish its duration and parse the report."""
        try:
            out, _ = self._proc.communicate(timeout=timeout)
        finally:
            self._script.unlink(missing_ok=True)
        return dataclasses.replace(parse_report(out), generator_cpu_s=_children_cpu() - self._cpu_before)


def run(url: str, connections: int, duration_s: int, threads: int = 2, headers=None, samples=None) -> WrkReport:
    """One wrk run of a fixed duration; `headers` are added to every request, `samples` are its bodies."""
    return WrkRun(url, connections, threads, duration_s, headers, samples).wait(timeout=duration_s + 60)
