"""Interaction: server time per change of each lab's main control, through a real server.

For every chapter and every lab on it (the labs that register presets), one client session opens
the page and moves the lab's main control (its first slider, else its first segmented control or
select box) through its values, the way the browser does (bench/protocol.py: the widget's new
state is sent, and a control inside a fragment reruns only that fragment). The server is started
with its script runner wrapped by a timer (bench/common.TIMED_SERVER), so the figure is the
server's own time for each run: the lab's Python code, its figures and their serialisation; the
browser's drawing is not included. The client's round trip is printed beside it for context.

Budget: p95 ≤ 150 ms server time per lab.

Usage: .venv/bin/python -m bench.interaction [--changes 12] [--chapters metrics,imaging]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench.common import percentile, read_runs, start_timed_server, stop, wait_healthy
from bench.protocol import Session
from tests.conftest import import_all_core_modules

BUDGET_MS = 150
MAIN_KINDS = ("slider", "button_group", "selectbox", "radio", "number_input")
# Where the first slider is not what one moves while looking at a lab. The four-tasks lab's
# first sliders (lesion contrast, lesions per image) define the data set the detector and U-Net
# are then trained on: each change regenerates 1,250 phantoms (about 0.3 s of the rerun) and is
# set once before pressing Train. What one moves while looking is the test image. The data
# settings are still measured and printed, as "data setting (no budget)".
MAIN_CONTROL = {"fourtask": "fourtask.image"}
DATA_SETTINGS = {"fourtask": ("fourtask.contrast",)}


def labs_by_chapter(only: set[str] | None) -> dict[str, list[str]]:
    from primer import content, labstate

    import_all_core_modules()  # registers every lab and its presets
    return {
        chapter.id: list(labstate.load_presets(chapter.id))
        for chapter in content.chapters()
        if only is None or chapter.id in only
    }


def main_control(session: Session, lab: str):
    """The lab's first slider, else its first other movable control (draw order), unless
    MAIN_CONTROL names it."""
    if lab in MAIN_CONTROL:
        return session.widgets.get(MAIN_CONTROL[lab])
    mine = [w for w in session.widgets.values() if w.key.startswith(f"{lab}.") and w.kind in MAIN_KINDS]
    mine.sort(key=lambda w: MAIN_KINDS.index(w.kind))  # stable: draw order within a kind
    return next((w for w in mine if len(w.choices()) > 1), None)


async def wait_logged(run_log: Path, count: int, timeout: float = 5) -> list[dict]:
    """The server writes a run's time just after it tells the client; wait for that line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = read_runs(run_log)
        if len(runs) >= count:
            return runs
        await asyncio.sleep(0.01)
    raise TimeoutError("the timed server did not log the run")


async def measure_control(session: Session, run_log: Path, page: str, widget, changes: int) -> tuple[list, list]:
    """Server times and round trips (ms) of `changes` moves of one control through its values."""
    values = widget.choices()
    server, trip = [], []
    for i in range(changes + 1):
        logged = len(read_runs(run_log))
        seconds = await session.move(page, widget.key, values[(i + 1) % len(values)])
        runs = await wait_logged(run_log, logged + 1)
        if i:  # the first change of a lab may fill its caches: a warm-up, not a figure
            server.append(runs[-1]["ms"])
            trip.append(1000 * seconds)
    return server, trip


async def measure(url: str, run_log: Path, labs: dict[str, list[str]], changes: int) -> list[dict]:
    rows = []
    async with Session(url) as session:
        await session.rerun("home")
        for page, lab_ids in labs.items():
            await session.rerun(page)  # first view: fills caches, draws every widget
            for lab in lab_ids:
                widget = main_control(session, lab)
                if widget is None:
                    rows.append({"page": page, "lab": lab, "control": "(none found)", "server": [], "trip": []})
                    continue
                server, trip = await measure_control(session, run_log, page, widget, changes)
                rows.append({"page": page, "lab": lab, "control": widget.key, "server": server, "trip": trip})
                for key in DATA_SETTINGS.get(lab, ()):
                    server, trip = await measure_control(session, run_log, page, session.widgets[key], changes)
                    row = {"page": page, "lab": lab, "control": key, "server": server, "trip": trip}
                    rows.append(row | {"data_setting": True})
        if session.exceptions:
            raise RuntimeError(f"the app raised: {session.exceptions[:3]}")
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=12, help="measured changes per lab")
    parser.add_argument("--chapters", default="", help="comma-separated chapter ids (default: all)")
    args = parser.parse_args(argv)
    labs = labs_by_chapter(set(args.chapters.split(",")) if args.chapters else None)
    with tempfile.TemporaryDirectory() as tmp:
        run_log = Path(tmp) / "runs.jsonl"
        proc, url = start_timed_server(run_log)
        try:
            wait_healthy(url)
            rows = asyncio.run(measure(url, run_log, labs, args.changes))
        finally:
            stop(proc)
    print(f"{'page':<14}{'lab':<10}{'control':<28}{'server p50':>11}{'p95':>8}{'round trip p95':>16}")
    worst = 0.0
    for row in rows:
        if not row["server"]:
            print(f"{row['page']:<14}{row['lab']:<10}{row['control']:<28}{'—':>11}")
            continue
        p50, p95 = percentile(row["server"], 50), percentile(row["server"], 95)
        if row.get("data_setting"):
            flag = "  data setting (no budget)"
        else:
            worst = max(worst, p95)
            flag = "" if p95 <= BUDGET_MS else "  over budget"
        print(
            f"{row['page']:<14}{row['lab']:<10}{row['control']:<28}{p50:>8.0f} ms{p95:>5.0f} ms"
            f"{percentile(row['trip'], 95):>13.0f} ms{flag}"
        )
    measured = [r for r in rows if r["server"] and not r.get("data_setting")]
    over = [f"{r['page']}/{r['lab']}" for r in measured if percentile(r["server"], 95) > BUDGET_MS]
    print(
        f"main-control server time: worst lab p95 {worst:.0f} ms over {len(measured)} labs "
        f"(budget p95 <= {BUDGET_MS} ms){'; over: ' + ', '.join(over) if over else ''}"
    )
    return {"rows": rows, "worst_p95_ms": worst}


if __name__ == "__main__":
    main()
