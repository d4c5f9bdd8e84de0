"""Run every benchmark, one after the other, and write bench/RESULTS.md.

Each benchmark runs in its own process (so one's caches and threads cannot help or slow the
next) and prints its own figures, with its budget on the same line. RESULTS.md gets the machine
(core count, CPU, date, versions, commit), a table of every line that states a budget, and each
benchmark's whole output. Run it on a quiet machine: the figures are seconds, not counts.

Usage: .venv/bin/python -m bench [--only startup,pages] [--skip load] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time

from bench.common import ROOT

# name → extra arguments; the order puts the quick, browser-free figures first
BENCHES: dict[str, list[str]] = {
    "training": [],
    "saliency": [],
    "architectures": [],
    "startup": [],
    "pages": [],
    "interaction": [],
    "imaging": [],
    "convolutions": [],
    "metrics": [],
    "terminology": [],
    "hostile": [],
    "load": [],
    "classroom": [],  # 20 students, SQLite, one process; the 3-replica run: see bench/classroom.py
    "future_shift": [],
    "future_federated": [],
    "future_uncertainty": [],
    "future_selfsup": [],
    "future_vit": [],
    "future_subgroups": [],
}
TIMEOUT_S = 1800


def machine() -> list[str]:
    import streamlit
    import torch

    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
            platform.processor() or "unknown",
        )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return [
        f"- Date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- Cores: {os.cpu_count()} ({cpu}); load average before the run: {os.getloadavg()[0]:.2f}",
        f"- Python {platform.python_version()}, torch {torch.__version__} (threads {torch.get_num_threads()}), "
        f"streamlit {streamlit.__version__}",
        f"- Commit: {commit.stdout.strip() or 'unknown'}{' with local changes' if dirty else ''}",
    ]


def run(name: str, args: list[str]) -> tuple[int, float, str]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        code, output = proc.returncode, proc.stdout + (f"\n[stderr]\n{proc.stderr[-3000:]}" if proc.returncode else "")
    except subprocess.TimeoutExpired as exc:
        code, output = -1, f"{exc.stdout or ''}\n[timed out after {TIMEOUT_S} s]"
    return code, time.perf_counter() - start, output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--skip", default="", help="comma-separated benchmark names")
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args(argv)
    only = [n for n in args.only.split(",") if n]
    chosen = [n for n in BENCHES if (not only or n in only) and n not in args.skip.split(",")]
    header = machine()
    outputs, budget_rows, failures = [], [], 0
    for name in chosen:
        print(f"== bench.{name}", flush=True)
        code, seconds, output = run(name, BENCHES[name])
        print(output, flush=True)
        failures += code != 0
        status = "ok" if code == 0 else f"exit {code}"
        outputs.append(f"### bench.{name} ({seconds:.0f} s, {status})\n\n```\n{output.rstrip()}\n```\n")
        budget_rows += [f"| {name} | {line.strip()} |" for line in output.splitlines() if "budget" in line.lower()]
        if code != 0:
            budget_rows.append(f"| {name} | **did not finish: {status}** |")
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            "Written by `.venv/bin/python -m bench`; every figure below comes from that run.",
            "",
            *header,
            "",
            "## Figures with a budget",
            "",
            "| bench | figure (budget) |",
            "|---|---|",
            *budget_rows,
            "",
            "## Full output",
            "",
            *outputs,
        ]
    )
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(text)
    print(f"wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
