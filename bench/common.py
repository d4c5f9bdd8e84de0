"""Shared helpers for the benchmarks: start a Streamlit server, drive headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(script: str | Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    port = port or free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(script),
            "--server.port",
            str(port),
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    return proc, f"http://127.0.0.1:{port}"


# Run inside the server process: time every script run (full or fragment) into a JSON-lines file,
# from the start of the run until its last message is queued (the browser's drawing excluded).
TIMED_SERVER = """
import json, os, signal, sys, time
from streamlit.runtime.scriptrunner import script_runner
_run_script = script_runner.ScriptRunner._run_script
# BENCH_PROFILE=<file>: every script run is profiled (cProfile, in its own thread) and the sum
# is written to <file> on SIGUSR2, to see where a whole class's CPU goes. It slows runs ~2x.
_profile_path = os.environ.get("BENCH_PROFILE")
if _profile_path:
    import cProfile, pstats, threading
    _profiles, _profiles_lock = [], threading.Lock()  # one pstats.Stats, the sum of all runs
    def _dump(*_):
        with _profiles_lock:
            if _profiles:
                _profiles[0].dump_stats(_profile_path)
    signal.signal(signal.SIGUSR2, _dump)
def timed(self, rerun_data):
    start, cpu = time.perf_counter(), time.thread_time()
    profile = cProfile.Profile(time.thread_time) if _profile_path else None  # CPU, not GIL waits
    if profile:
        profile.enable()
    try:
        return _run_script(self, rerun_data)
    finally:
        if profile:
            profile.disable()
            with _profiles_lock:
                if _profiles:
                    _profiles[0].add(profile)
                else:
                    _profiles.append(pstats.Stats(profile))
        with open(os.environ["BENCH_RUN_LOG"], "a") as log:
            log.write(json.dumps({"ms": 1000 * (time.perf_counter() - start), "page": rerun_data.page_name,
                                  "cpu_ms": 1000 * (time.thread_time() - cpu),
                                  "fragment": bool(rerun_data.fragment_id_queue)}) + "\\n")
script_runner.ScriptRunner._run_script = timed
# SIGUSR1: collect garbage and hand freed heap back to the OS, so that RSS read just after shows
# the memory still in use (Streamlit's post-run GC is off, and glibc keeps freed pages).
import ctypes, gc
_libc = ctypes.CDLL("libc.so.6")
signal.signal(signal.SIGUSR1, lambda *_: (gc.collect(), _libc.malloc_trim(0)))
from streamlit.web.cli import main
sys.argv = ["streamlit", "run", "app/main.py", "--server.port", sys.argv[1], "--server.headless", "true", *sys.argv[2:]]
main()
"""


def start_timed_server(
    run_log: Path, options: tuple[str, ...] = (), env: dict | None = None
) -> tuple[subprocess.Popen, str]:
    """Start the app with every script run's server time appended to `run_log` (JSON lines)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", TIMED_SERVER, str(port), *options],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "BENCH_RUN_LOG": str(run_log), **(env or {})},
    )
    return proc, f"http://127.0.0.1:{port}"


def collected_rss_mb(pid: int, settle_s: float = 1.0) -> float:
    """RSS of a timed server after it has collected garbage and trimmed its heap (SIGUSR1)."""
    os.kill(pid, signal.SIGUSR1)
    time.sleep(settle_s)
    return rss_mb(pid)


def read_runs(run_log: Path) -> list[dict]:
    if not run_log.exists():
        return []
    return [json.loads(line) for line in run_log.read_text().splitlines() if line.strip()]


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_healthy(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{url} not healthy")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS)


def percentile(values, q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))
