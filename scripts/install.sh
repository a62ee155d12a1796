#!/usr/bin/env bash
# Install what the native stack needs, skipping what is already there:
# Debian packages (Java for TorchServe's frontend, Nginx with Lua, load tools,
# Prometheus, Alertmanager and the node and Nginx exporters, logrotate, docker-compose
# to check the compose stack)
# and the project's own .venv with the pinned Python dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v nginx >/dev/null || missing+=(nginx-light)
[ -f /usr/share/nginx/modules/ngx_http_lua_module.so ] || missing+=(libnginx-mod-http-lua)
command -v wrk >/dev/null || missing+=(wrk)
command -v ab >/dev/null || missing+=(apache2-utils)
command -v curl >/dev/null || missing+=(curl)
{ command -v prometheus && command -v promtool; } >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
command -v prometheus-nginx-exporter >/dev/null || missing+=(prometheus-nginx-exporter)
command -v logrotate >/dev/null || missing+=(logrotate)  # run by the stack's supervisor (twinserve/runtime/logrotate.py)
command -v luacheck >/dev/null || missing+=(lua-check)  # make lint: Nginx's Lua (nginx/lua)
command -v docker-compose >/dev/null || missing+=(docker-compose)  # validates docker-compose.yml; no engine needed

if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The packaged services (nginx, prometheus, ...) are not ours: twinserve runs its
# own processes on its own ports and leaves the system's services alone.

if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt .venv/.installed ]; then
    echo "installing the Python environment in .venv (torch==2.13.0, torchserve==0.12.0, ...)"
    python3 -m venv .venv
    if ! .venv/bin/pip install -q -e '.[dev]' > .venv/install.log 2>&1; then
        tail -n 20 .venv/install.log
        echo "install.sh: error: pip install failed; the whole log is in .venv/install.log" >&2
        exit 1
    fi
    touch .venv/.installed
fi
