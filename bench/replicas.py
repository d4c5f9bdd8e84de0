"""Several app processes on one database behind deploy/nginx.conf, on loopback: what
tests/browser/test_replicas_browser.py checks and bench.classroom loads.

The nginx file is used as it is; only the lines it marks "replaced by the test" (the upstream
servers and the listen address) are rewritten, and a non-root nginx gets its buffers and logs
under a temporary prefix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.common import ROOT, free_port

TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> str | None:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return found if os.path.exists(found) else None


def nginx_conf(upstreams: list[str], port: int, prefix: Path) -> str:
    """deploy/nginx.conf pointed at `upstreams` ("127.0.0.1:8501", ...) and listening on `port`."""
    servers = iter(upstreams)
    lines = []
    for line in (ROOT / "deploy" / "nginx.conf").read_text().splitlines():
        replaced = "replaced by the test" in line
        if replaced and line.strip().startswith("server "):
            # the file lists three replicas; more upstreams than that get lines of their own
            lines += [f"        server {u};" for u in [next(servers, None)] if u]
        elif replaced and line.strip().startswith("listen "):
            lines.append(f"        listen 127.0.0.1:{port};")
        else:
            lines.append(line)
            if line.startswith("http {"):
                lines += [f"    {name}_temp_path {prefix}/{name};" for name in TEMP_PATHS]
                lines.append("    access_log off;")
    rest = [f"        server {u};" for u in servers]
    if rest:  # after the last server line of the upstream block
        last = max(i for i, line in enumerate(lines) if line.strip().startswith("server ") and ":" in line)
        lines[last + 1 : last + 1] = rest
    return "\n".join(lines) + "\n"


def start_nginx(upstreams: list[str], prefix: Path) -> tuple[subprocess.Popen, str]:
    """Start nginx in front of `upstreams` and wait until it answers the app's health check."""
    nginx = nginx_binary()
    if nginx is None:
        raise RuntimeError("nginx is not installed (bin/setup --dev installs Debian's nginx)")
    port = free_port()
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "logs").mkdir(exist_ok=True)
    prefix.chmod(0o777)  # nginx's workers run as another user when started as root
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(upstreams, port, prefix))
    globals_ = f"daemon off; pid {prefix}/nginx.pid; error_log {prefix}/error.log;"
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf), "-g", globals_])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log = prefix / "error.log"
                raise RuntimeError("nginx did not start: " + (log.read_text() if log.exists() else "")) from None
            time.sleep(0.2)
