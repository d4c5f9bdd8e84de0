"""A live class under load: N students walking the labs while they answer a poll.

One instructor and N students, each a websocket client speaking Streamlit's own protocol
(bench/protocol.py), so every click goes through the real server, session, script runner,
fragments and database. The class arrives over the first seconds and joins with the class code
the instructor's page shows; everyone walks the chapters, moving each lab's main control and
looking for 1-4 s between moves, while the sidebar's live panel asks for news every 2 s as the
browser's timer would. Then the instructor starts a poll: every student answers within 10 s of
seeing it and keeps walking. The instructor's chart is polled on its own timer (1 s).

Two set-ups (the issue's budgets):
- `--replicas 3 --database postgres`: three app processes behind deploy/nginx.conf (sticky by
  cookie) sharing one PostgreSQL (--database-url, else $PRIMER_TEST_POSTGRES_URL, else
  bin/postgres-for-tests starts one on loopback);
- `--replicas 1 --database sqlite`: one process on an SQLite file.

Reported: interaction latency p50/p95 (every round trip: lab moves, live-panel polls, join,
answer), errors, answers sent against rows stored and against the instructor's final count
(answers lost), the time from the last answer to a complete chart, and script CPU per replica.

    PYTHONPATH=. .venv/bin/python -m bench.classroom --students 20 --replicas 1 --database sqlite
    PYTHONPATH=. .venv/bin/python -m bench.classroom --students 60 --replicas 3 --database postgres

The clients run in this process and take CPU from the same two cores as the servers; the
figures are therefore an upper bound of what the servers alone would need.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from app.widgets.classroom import LIVE_SECONDS  # the live panel's timer, as the browser keeps it
from bench.common import ROOT, percentile, read_runs, start_timed_server, stop, wait_healthy
from bench.interaction import labs_by_chapter, main_control
from bench.protocol import Session
from bench.replicas import start_nginx

LOOK_SECONDS = (1.0, 4.0)  # a class reading between two moves (bench.load --look 1-4)
# seconds from seeing the poll to sending: with the live panel's 2 s and a move in between, the
# whole class has answered within 10 s of the poll opening
ANSWER_WINDOW = (1.0, 6.0)
ANSWERS = re.compile(r"Answers so far: (\d+)")


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)  # kind → round trips (s)
    errors: list[str] = field(default_factory=list)
    joined: int = 0
    seen: list[float] = field(default_factory=list)  # monotonic time each student first saw the poll
    sent: list[float] = field(default_factory=list)  # monotonic time each answer was confirmed
    chart: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, count shown)

    def add(self, kind: str, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append(seconds)


@dataclass
class Timeline:
    join_code: asyncio.Future
    poll_opened: asyncio.Event
    poll_at: float = 0.0  # monotonic: when the instructor starts the poll
    end_at: float = 0.0


async def instructor(url: str, stats: Stats, timeline: Timeline) -> None:
    async with Session(url) as s:
        await s.rerun("class")
        await s.submit("class", {"class.title_input": "Load test"}, "class.create_submit")
        code = s.metrics.get("Class code")
        if not code:
            timeline.join_code.set_exception(RuntimeError("the console showed no class code"))
            return
        timeline.join_code.set_result(code)
        while time.monotonic() < timeline.poll_at:
            await asyncio.sleep(0.2)
        stats.add("instructor", await s.press("class", "class.start"))
        timeline.poll_opened.set()
        while time.monotonic() < timeline.end_at:
            stats.add("instructor", await s.poll("class"))  # the chart's own timer (CHART_SECONDS)
            shown = [int(m.group(1)) for text in s.texts for m in ANSWERS.finditer(text)]
            if shown:
                stats.chart.append((time.monotonic(), shown[-1]))
        stats.errors.extend(f"instructor: {e}" for e in s.exceptions)


async def student(index: int, url: str, pages: dict[str, list[str]], stats: Stats, timeline: Timeline) -> None:
    rng = random.Random(index)
    try:
        async with Session(url) as s:
            stats.add("page", await s.rerun("class"))
            code = await timeline.join_code
            values = {"class.join_code_input": code, "class.nickname_input": f"student {index}"}
            stats.add("join", await s.submit("class", values, "class.join_submit"))
            if not s.auto_reruns:
                stats.errors.append(f"student {index}: did not join")
                return
            stats.joined += 1
            order = [p for p in pages if pages[p]]
            rng.shuffle(order)
            answer_at, answered, last_live, walked = None, False, time.monotonic(), 0
            while time.monotonic() < timeline.end_at:
                page = order[walked % len(order)]
                walked += 1
                stats.add("page", await s.rerun(page))
                for lab in pages[page]:
                    if time.monotonic() >= timeline.end_at:
                        break
                    widget = main_control(s, lab)
                    if widget is not None:
                        stats.add("move", await s.move(page, widget.key, rng.choice(widget.choices())))
                    look_until = time.monotonic() + rng.uniform(*LOOK_SECONDS)
                    while time.monotonic() < look_until:  # reading; the live panel keeps its timer
                        await asyncio.sleep(max(0.0, min(look_until, last_live + LIVE_SECONDS) - time.monotonic()))
                        if time.monotonic() - last_live < LIVE_SECONDS:
                            continue
                        last_live = time.monotonic()
                        fragment = next(iter(s.auto_reruns), "")
                        stats.add("live", await s.rerun(page, fragment_id=fragment))
                        send = next((k for k in s.widgets if k.startswith("class.send.")), None)
                        if send is None or answered:
                            continue
                        if answer_at is None:
                            stats.seen.append(time.monotonic())
                            answer_at = time.monotonic() + rng.uniform(*ANSWER_WINDOW)
                        if time.monotonic() >= answer_at:
                            radio = s.widgets["class.poll." + send.removeprefix("class.send.")]
                            choice = rng.choice(radio.choices())
                            stats.add("answer", await s.submit(page, {radio.key: choice}, send))
                            answered = True
                            if any(text.startswith("Sent:") for text in s.texts):
                                stats.sent.append(time.monotonic())
                            else:
                                stats.errors.append(f"student {index}: the answer was not confirmed")
            if timeline.poll_opened.is_set() and not answered:
                stats.errors.append(f"student {index}: never answered")
            stats.errors.extend(f"student {index}: {e}" for e in s.exceptions)
    except Exception as exc:  # a dropped connection or a timeout is an error, never a crash of the bench
        stats.errors.append(f"student {index}: {type(exc).__name__}: {exc}")


async def warm_up(url: str, pages: dict[str, list[str]]) -> None:
    """One visitor per replica first: imports and shared caches, as after a deployment's first user."""
    async with Session(url) as s:
        for page in ["home", "class", *pages]:
            await s.rerun(page)
            for lab in pages.get(page, []):
                widget = main_control(s, lab)
                if widget is not None:
                    await s.move(page, widget.key, widget.choices()[-1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_url(kind: str, given: str, workdir: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'primer.db'}"
    if given:
        return given
    if os.environ.get("PRIMER_TEST_POSTGRES_URL"):
        return os.environ["PRIMER_TEST_POSTGRES_URL"]
    return subprocess.run(
        [str(ROOT / "bin" / "postgres-for-tests")], check=True, capture_output=True, text=True
    ).stdout.strip()


def fresh_schema(url: str) -> None:
    """An empty database: the class's rows are the only rows counted."""
    from primer import classroom, storage  # noqa: F401 - classroom registers its tables

    engine = sa.create_engine(url)
    storage.metadata.drop_all(engine)
    engine.dispose()
    storage.Store(url).migrate()


def stored_answers(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*) FROM poll_answers")).scalar()
    engine.dispose()
    return int(n)


async def run(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="primer-class-"))
    url_db = database_url(args.database, args.database_url, workdir)
    fresh_schema(url_db)
    pages = labs_by_chapter(None)
    servers, logs = [], []
    proxy = None
    try:
        for i in range(args.replicas):
            log = workdir / f"runs-{i}.jsonl"
            proc, url = start_timed_server(log, env={"PRIMER_DATABASE_URL": url_db})
            servers.append((proc, url))
            logs.append(log)
        for _, url in servers:
            wait_healthy(url)
        await asyncio.gather(*(warm_up(url, pages) for _, url in servers))
        for log in logs:
            log.write_text("")  # count the class only
        if args.replicas > 1:
            proxy, entry = start_nginx([u.removeprefix("http://") for _, u in servers], workdir / "nginx")
        else:
            entry = servers[0][1]
        stats = Stats()
        server_cpu = [cpu_seconds(proc.pid) for proc, _ in servers]
        client_cpu = time.process_time()
        start = time.monotonic()
        loop = asyncio.get_running_loop()
        poll_at = start + args.join_seconds + args.walk_seconds
        timeline = Timeline(loop.create_future(), asyncio.Event(), poll_at, poll_at + 10 + args.after_seconds)

        async def arriving(i: int):
            await asyncio.sleep(i * args.join_seconds / args.students)  # the class comes in over the first seconds
            await student(i, entry, pages, stats, timeline)

        await asyncio.gather(instructor(entry, stats, timeline), *(arriving(i) for i in range(args.students)))
        return {
            "stats": stats,
            "elapsed": time.monotonic() - start,
            "server_cpu": [cpu_seconds(proc.pid) - c for (proc, _), c in zip(servers, server_cpu, strict=True)],
            "client_cpu": time.process_time() - client_cpu,
            "stored": stored_answers(url_db),
            "runs": [read_runs(log) for log in logs],
            "poll_at": timeline.poll_at,
        }
    finally:
        if proxy is not None:
            stop(proxy)
        for proc, _ in servers:
            stop(proc)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--join-seconds", type=float, default=10.0, help="the class arrives over this long")
    parser.add_argument("--walk-seconds", type=float, default=20.0, help="walking the labs before the poll")
    parser.add_argument("--after-seconds", type=float, default=10.0, help="walking on after the 10 s poll window")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    stats = result["stats"]
    every = [x for values in stats.latencies.values() for x in values]
    print(
        f"class of {args.students} students on {args.replicas} replica(s), {args.database}"
        f"{' behind nginx' if args.replicas > 1 else ''}: joined {stats.joined}, {result['elapsed']:.0f} s"
    )
    if every:
        print(
            f"interactions: {len(every)}; latency p50 {percentile(every, 50) * 1000:.0f} ms, "
            f"p95 {percentile(every, 95) * 1000:.0f} ms (budget p95 <= 1000 ms)"
        )
        print(
            "  by kind (p95): "
            + ", ".join(
                f"{kind} {percentile(v, 95) * 1000:.0f} ms (n={len(v)})" for kind, v in sorted(stats.latencies.items())
            )
        )
    print(f"errors: {len(stats.errors)} (budget 0)" + "".join(f"\n  {e}" for e in stats.errors[:10]))
    sent, stored = len(stats.sent), result["stored"]
    final = stats.chart[-1][1] if stats.chart else 0
    print(
        f"answers: {sent} sent and confirmed, {stored} rows stored, instructor's chart shows {final}; "
        f"lost {sent - stored} (budget 0)"
    )
    if stats.seen:
        print(
            f"every student saw the poll {max(stats.seen) - result['poll_at']:.1f} s after it opened (live panel: 2 s)"
        )
    if stats.sent:
        last = max(stats.sent)
        print(f"all answers in {last - result['poll_at']:.1f} s after the poll opened (budget: within 10 s)")
        complete = next((t for t, n in stats.chart if n >= sent and t >= last), None)
        if complete is None:
            print("instructor's chart never showed every answer (budget: complete within 2 s)")
        else:
            print(f"instructor's chart complete {complete - last:.1f} s after the last answer (budget <= 2 s)")
    for i, (runs, total) in enumerate(zip(result["runs"], result["server_cpu"], strict=True)):
        script = sum(r["cpu_ms"] for r in runs) / 1000
        print(
            f"  replica {i + 1}: {len(runs)} script runs, {script:.0f} s of script-thread CPU, "
            f"{total:.0f} s of process CPU in {result['elapsed']:.0f} s"
        )
    runs = [r for per_replica in result["runs"] for r in per_replica]
    if runs:
        groups: dict[tuple[str, bool], list[float]] = {}
        for r in runs:
            groups.setdefault((r["page"] or "home", r["fragment"]), []).append(r["cpu_ms"])
        top = sorted(groups.items(), key=lambda item: -sum(item[1]))[:6]
        print(
            "  script CPU by page (full runs / fragment reruns): "
            + ", ".join(
                f"{page} {'fragment' if frag else 'page'} {sum(v) / 1000:.1f} s ({len(v)} runs, median {percentile(v, 50):.0f} ms)"
                for (page, frag), v in top
            )
        )
    print(
        f"  the {args.students + 1} simulated browsers (this process): {result['client_cpu']:.0f} s of CPU; "
        f"{os.cpu_count()} cores, so {os.cpu_count() * result['elapsed']:.0f} core-seconds in all"
    )
    return result


if __name__ == "__main__":
    main()
