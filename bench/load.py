"""A classroom on one machine: N real sessions against one server, some pressing Train.

Each simulated student is a websocket client speaking Streamlit's own protocol (the protobuf
BackMsg / ForwardMsg messages the browser sends and receives), so every interaction goes through
the real server, session and script runner, exactly as a browser's would, without paying for 20
browsers on the same two cores. A student walks through the chapters and moves each lab's main
control (the new value arrives through the URL query string the control is bound to, as when a
student changes it and the app updates the address); a few also press Train.

Reported: interaction latency (send → script finished) p50/p95, errors (exception elements,
dropped connections), training queue waits, and the server's RSS over time, including after
every session has disconnected.

Usage: .venv/bin/python -m bench.load [--sessions 20] [--trainers 5] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import time
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench.common import ROOT, percentile, start_streamlit, stop, wait_healthy

# page url path → (query parameter of its main control, values a student moves it through)
LABS: dict[str, tuple[str, list[str]]] = {
    "training": ("train.contrast", ["2.0", "2.25", "2.5", "2.75", "3.0"]),
}
WAITED = re.compile(r"waited ([0-9.]+) s in line")


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    page_loads: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    queue_waits: list[float] = field(default_factory=list)
    trainings_finished: int = 0


class Session:
    """One browser tab's worth of protocol: rerun requests in, deltas out."""

    def __init__(self, url: str, stats: Stats):
        self.ws_url = url.replace("http", "ws") + "/_stcore/stream"
        self.origin = url
        self.stats = stats
        self.widget_ids: set[str] = set()  # ids of the widgets drawn so far (they end with the key)
        self.texts: list[str] = []
        self.ws = None

    async def __aenter__(self):
        self.ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], origin=self.origin, max_size=2**26)
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()

    async def rerun(self, page: str, query: str, widget_states=None, timeout: float = 120) -> float:
        """Ask for a script run and wait for it to finish; returns the latency in seconds."""
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_name = page
        for state in widget_states or []:
            msg.rerun_script.widget_states.widgets.append(state)
        self.texts = []
        start = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), timeout=timeout)
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            kind = fwd.WhichOneof("type")
            if kind == "delta":
                self._read_delta(fwd.delta)
            elif kind == "script_finished":
                return time.perf_counter() - start

    def _read_delta(self, delta) -> None:
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        if kind == "exception":
            self.stats.errors.append(f"{element.exception.type}: {element.exception.message}")
            return
        if kind == "markdown":
            self.texts.append(element.markdown.body)
        inner = getattr(element, kind, None) if kind else None
        widget_id = getattr(inner, "id", "") if inner is not None else ""
        if widget_id:
            self.widget_ids.add(widget_id)

    def widget_id(self, key: str) -> str | None:
        return next((w for w in self.widget_ids if w.endswith(f"-{key}")), None)


async def student(index: int, url: str, stats: Stats, seconds: float, trains: bool) -> None:
    rng = random.Random(index)
    deadline = time.monotonic() + seconds
    try:
        async with Session(url, stats) as session:
            stats.page_loads.append(await session.rerun("home", ""))
            if trains:
                await press_train(session, stats, rng)
            while time.monotonic() < deadline:
                page = rng.choice(list(LABS))
                param, values = LABS[page]
                stats.page_loads.append(await session.rerun(page, ""))
                for _ in range(rng.randint(3, 6)):
                    value = rng.choice(values)
                    stats.latencies.append(await session.rerun(page, f"{param}={value}"))
                    await asyncio.sleep(rng.uniform(0.2, 1.0))  # a student looks before moving again
    except Exception as exc:  # a dropped connection or timeout is an error, never a crash of the test
        stats.errors.append(f"session {index}: {type(exc).__name__}: {exc}")


async def press_train(session: Session, stats: Stats, rng: random.Random) -> None:
    """Open the training lab with a student-specific seed, press Train, wait for the result."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    query = f"train.seed={rng.randint(0, 3)}"  # some students share a seed, so some runs are shared
    await session.rerun("training", query)
    button = session.widget_id("training.train")
    if button is None:
        stats.errors.append("Train button not found")
        return
    state = WidgetState(id=button, trigger_value=True)
    await session.rerun("training", query, [state])
    for _ in range(600):
        await asyncio.sleep(1.0)
        await session.rerun("training", query)
        waited = [float(m.group(1)) for text in session.texts for m in WAITED.finditer(text)]
        if waited:
            stats.queue_waits.append(waited[0])
            stats.trainings_finished += 1
            return
    stats.errors.append("training did not finish within 10 minutes")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def sample_rss(pid: int, samples: list, stop_event: asyncio.Event) -> None:
    start = time.monotonic()
    while not stop_event.is_set():
        samples.append((time.monotonic() - start, rss_mb(pid)))
        await asyncio.sleep(1.0)


async def run(sessions: int, trainers: int, seconds: float) -> dict:
    proc, url = start_streamlit(ROOT / "app" / "main.py")
    try:
        wait_healthy(url)
        stats, samples, stop_event = Stats(), [], asyncio.Event()
        sampler = asyncio.create_task(sample_rss(proc.pid, samples, stop_event))
        async with Session(url, stats) as warm:  # one visitor warms caches and imports first
            for page in ["home", *LABS]:
                await warm.rerun(page, "")
        rss_warm = rss_mb(proc.pid)
        await asyncio.gather(*(student(i, url, stats, seconds, trains=i < trainers) for i in range(sessions)))
        await asyncio.sleep(5)  # sessions closed: their memory should be released
        rss_after = rss_mb(proc.pid)
        stop_event.set()
        await sampler
        return {"stats": stats, "rss": samples, "rss_warm": rss_warm, "rss_after": rss_after}
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--trainers", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    result = asyncio.run(run(args.sessions, args.trainers, args.seconds))
    stats = result["stats"]
    lat = stats.latencies
    print(f"{args.sessions} sessions, {args.trainers} pressing Train, {args.seconds:.0f} s of interaction each")
    if lat:
        print(f"interactions: {len(lat)}; latency p50 {percentile(lat, 50) * 1000:.0f} ms, p95 {percentile(lat, 95) * 1000:.0f} ms (budget p95 <= 1000 ms)")
    print(f"page loads: {len(stats.page_loads)}; p50 {percentile(stats.page_loads, 50):.2f} s, p95 {percentile(stats.page_loads, 95):.2f} s")
    print(f"errors: {len(stats.errors)}" + ("".join(f"\n  {e}" for e in stats.errors[:10])))
    if stats.queue_waits:
        print(f"trainings finished: {stats.trainings_finished}; queue wait median {statistics.median(stats.queue_waits):.1f} s, max {max(stats.queue_waits):.1f} s")
    rss = [mb for _, mb in result["rss"]]
    print(f"server RSS: warm {result['rss_warm']:.0f} MB, peak {max(rss):.0f} MB, after all sessions closed {result['rss_after']:.0f} MB")


if __name__ == "__main__":
    main()
