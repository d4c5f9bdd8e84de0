"""A classroom on one machine: N real sessions against one server, some pressing Train.

Each simulated student is a websocket client speaking Streamlit's own protocol (the protobuf
BackMsg / ForwardMsg messages the browser sends and receives), so every interaction goes through
the real server, session and script runner, exactly as a browser's would, without paying for 20
browsers on the same two cores. A student walks through the chapters and moves each lab's main
control the way the browser moves it (bench/protocol.py); a few also press Train.

Reported: interaction latency (send → script finished) p50/p95, errors (exception elements,
dropped connections), training queue waits, and the server's RSS over time, including after
every session has disconnected.

Usage: .venv/bin/python -m bench.load [--sessions 20] [--trainers 5] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import collected_rss_mb, percentile, read_runs, rss_mb, start_timed_server, stop, wait_healthy
from bench.interaction import labs_by_chapter, main_control
from bench.protocol import Session

WAITED = re.compile(r"waited ([0-9.]+) s in line")
# How long a student looks between two moves. 0.2–1 s is a student dragging a control to and
# fro, faster than anyone reads a changed figure: a stress pace. --look 1-4 is a class reading.
LOOK_SECONDS = (0.2, 1.0)


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    by_lab: dict[str, list[float]] = field(default_factory=dict)  # "page/lab" -> latencies
    page_loads: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    queue_waits: list[float] = field(default_factory=list)
    trainings_finished: int = 0


async def visit(session: Session, page: str, labs: list[str], stats: Stats, rng: random.Random, pause=True) -> None:
    """Open a page, then move each lab's main control a few times, looking in between."""
    stats.page_loads.append(await session.rerun(page))
    for lab in labs:
        widget = main_control(session, lab)
        if widget is None:
            continue
        for _ in range(rng.randint(1, 3)):
            seconds = await session.move(page, widget.key, rng.choice(widget.choices()))
            stats.latencies.append(seconds)
            stats.by_lab.setdefault(f"{page}/{lab}", []).append(seconds)
            if pause:
                await asyncio.sleep(rng.uniform(*LOOK_SECONDS))  # a student looks before moving again


async def student(index: int, url: str, pages: dict[str, list[str]], stats: Stats, seconds: float, trains: bool):
    """Walk every page once in a student-specific order (then keep walking until time is up)."""
    rng = random.Random(index)
    deadline = time.monotonic() + seconds
    try:
        async with Session(url) as session:
            stats.page_loads.append(await session.rerun("home"))
            if trains:
                await press_train(session, stats, rng)
            order = list(pages)
            rng.shuffle(order)
            walked = 0
            while walked < len(order) or time.monotonic() < deadline:
                page = order[walked % len(order)]
                await visit(session, page, pages[page], stats, rng)
                walked += 1
            stats.errors.extend(f"session {index}: {e}" for e in session.exceptions)
    except Exception as exc:  # a dropped connection or timeout is an error, never a crash of the test
        stats.errors.append(f"session {index}: {type(exc).__name__}: {exc}")


async def press_train(session: Session, stats: Stats, rng: random.Random) -> None:
    """Open the training lab with a student-specific seed, press Train, wait for the result."""
    query = f"train.seed={rng.randint(0, 3)}"  # some students share a seed, so some runs are shared
    await session.rerun("training", query)
    if "training.train" not in session.widgets:
        stats.errors.append("Train button not found")
        return
    await session.press("training", "training.train", query)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        await session.poll("training", query)  # the live panel's timer, as in the browser
        waited = [float(m.group(1)) for text in session.texts for m in WAITED.finditer(text)]
        if waited:
            stats.queue_waits.append(waited[0])
            stats.trainings_finished += 1
            return
    stats.errors.append("training did not finish within 10 minutes")


async def sample_rss(pid: int, samples: list, stop_event: asyncio.Event) -> None:
    start = time.monotonic()
    while not stop_event.is_set():
        samples.append((time.monotonic() - start, rss_mb(pid)))
        await asyncio.sleep(1.0)


async def run(sessions: int, trainers: int, seconds: float, waves: int = 2, profile: str = "") -> dict:
    pages = labs_by_chapter(None)
    run_log = Path(tempfile.mkdtemp()) / "runs.jsonl"
    # every script run's server and CPU time, for the breakdown (and a profile of them all if asked)
    proc, url = start_timed_server(run_log, env={"BENCH_PROFILE": str(Path(profile).resolve())} if profile else {})
    try:
        wait_healthy(url)
        stats, samples, stop_event = Stats(), [], asyncio.Event()
        sampler = asyncio.create_task(sample_rss(proc.pid, samples, stop_event))
        rss_start = rss_mb(proc.pid)
        async with Session(url) as first:  # one user visits every page: imports, shared caches
            for page in ["home", *pages, "glossary", "progress"]:
                await visit(first, page, pages.get(page, []), Stats(), random.Random(0), pause=False)
            stats.errors.extend(f"first user: {e}" for e in first.exceptions)
        await asyncio.sleep(3)
        rss_one = rss_mb(proc.pid)
        start = time.monotonic()
        # The same class again after the first has left: the same students make the same moves,
        # so shared caches (other seeds, contrasts, labels) are already filled; memory that grows
        # with the second class is kept per session.
        rss_after, rss_collected = [], []
        for _ in range(waves):
            await asyncio.gather(
                *(student(i, url, pages, stats, seconds, trains=i < trainers) for i in range(sessions))
            )
            await asyncio.sleep(5)  # sessions closed: their memory should be released
            rss_after.append(rss_mb(proc.pid))
            rss_collected.append(await asyncio.to_thread(collected_rss_mb, proc.pid))
        elapsed = time.monotonic() - start
        if profile:
            asked = time.time()
            os.kill(proc.pid, signal.SIGUSR2)  # write the summed profile
            written = Path(profile)
            for _ in range(600):  # the server writes it between two of its own steps
                if written.exists() and written.stat().st_mtime >= asked:
                    break
                await asyncio.sleep(0.1)
        stop_event.set()
        await sampler
        return {
            "stats": stats,
            "rss": samples,
            "rss_start": rss_start,
            "rss_one": rss_one,
            "rss_after": rss_after,
            "rss_collected": rss_collected,
            "elapsed": elapsed,
            "runs": read_runs(run_log),
        }
    finally:
        stop(proc)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--trainers", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60, help="keep walking at least this long")
    parser.add_argument("--waves", type=int, default=3, help="classes one after the other (memory check)")
    parser.add_argument("--look", default="0.2-1", help="seconds between two moves of a student, low-high")
    parser.add_argument("--profile", default="", help="write a cProfile of every script run to this file (slows runs)")
    args = parser.parse_args(argv)
    global LOOK_SECONDS
    LOOK_SECONDS = tuple(float(v) for v in args.look.split("-"))
    result = asyncio.run(run(args.sessions, args.trainers, args.seconds, args.waves, args.profile))
    stats = result["stats"]
    lat = stats.latencies
    print(
        f"{args.sessions} sessions each walking every page and moving every lab's main control, "
        f"{args.trainers} of them pressing Train; {args.waves} classes one after the other; "
        f"{LOOK_SECONDS[0]:g}–{LOOK_SECONDS[1]:g} s between moves; "
        f"{result['elapsed']:.0f} s"
    )
    if lat:
        print(
            f"interactions: {len(lat)}; latency p50 {percentile(lat, 50) * 1000:.0f} ms, "
            f"p95 {percentile(lat, 95) * 1000:.0f} ms (budget p95 <= 1000 ms)"
        )
        slowest = sorted(stats.by_lab.items(), key=lambda item: -percentile(item[1], 95))[:8]
        print(
            "slowest labs (p95 of round trips): "
            + ", ".join(f"{name} {percentile(values, 95) * 1000:.0f} ms" for name, values in slowest)
        )
    loads = stats.page_loads
    print(f"page loads: {len(loads)}; p50 {percentile(loads, 50):.2f} s, p95 {percentile(loads, 95):.2f} s")
    print(f"errors: {len(stats.errors)} (budget 0)" + "".join(f"\n  {e}" for e in stats.errors[:10]))
    if stats.queue_waits:
        print(
            f"trainings finished: {stats.trainings_finished}; queue wait median "
            f"{statistics.median(stats.queue_waits):.1f} s, max {max(stats.queue_waits):.1f} s"
        )
    rss = [mb for _, mb in result["rss"]]
    after = result["rss_after"]
    print(
        f"server RSS: started {result['rss_start']:.0f} MB; after one user visited every page "
        f"{result['rss_one']:.0f} MB; peak with {args.sessions} sessions {max(rss):.0f} MB; "
        + "; ".join(f"after class {i + 1} left {mb:.0f} MB" for i, mb in enumerate(after))
    )
    collected = result["rss_collected"]
    print(
        "after a garbage collection and heap trim (memory still in use): "
        + "; ".join(f"class {i + 1} {mb:.0f} MB" for i, mb in enumerate(collected))
    )
    if len(collected) > 1:
        kept = (collected[-1] - collected[-2]) / args.sessions
        print(f"memory kept per session by the same class coming back: {kept:+.1f} MB (budget: flat, about 0)")
    runs = result["runs"]
    if runs:
        total = sum(r["cpu_ms"] for r in runs) / 1000
        print(
            f"script runs: {len(runs)}, {total:.0f} s of script-thread CPU in {result['elapsed']:.0f} s "
            "(torch's worker threads and training jobs not included); by page, full runs / lab reruns:"
        )
        for page in sorted({r["page"] for r in runs}):
            for fragment in (False, True):
                mine = [r for r in runs if r["page"] == page and r["fragment"] == fragment]
                if mine:
                    print(
                        f"  {page or 'home':<14}{'lab' if fragment else 'page':<5}{len(mine):>6} runs, "
                        f"CPU {sum(r['cpu_ms'] for r in mine) / 1000:6.1f} s (median {percentile([r['cpu_ms'] for r in mine], 50):5.0f} ms), "
                        f"server time p95 {percentile([r['ms'] for r in mine], 95):6.0f} ms"
                    )
    step = max(1, len(result["rss"]) // 12)
    print("RSS over time: " + ", ".join(f"{t:.0f} s {mb:.0f} MB" for t, mb in result["rss"][::step]))
    return result


if __name__ == "__main__":
    main()
