"""Every slider on the convolution page: server time per change, measured on a real server.

The server (bench.common's timed server) logs how long every script run takes: a whole-page
run, or a fragment rerun (labs 2–6 are fragments, so one of their sliders reruns only its lab).
Headless Chromium opens the page on a 512×512 image (the MR shoulder) and moves each slider with
the keyboard, one step at a time, waiting for each run to finish; the step buttons of the number
inputs count as slider moves too. Lab 1's selectors and lab 6's switches rerun more (lab 1 feeds
every other lab) and are reported on their own line. Budget: every slider change <= 150 ms
server time at p95. Streamlit's post-run garbage collection is off (.streamlit/config.toml).

Usage: .venv/bin/python bench/convolutions.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import launch_browser, percentile, read_runs, start_timed_server, stop, wait_healthy  # noqa: E402

BUDGET_MS = 150.0
IMAGE = "mr_shoulder"  # 512×512

# (widget key, moves): "R"/"L" press an arrow key on a slider, "+"/"-" click a number input's
# step buttons. Each sequence returns to the default, so the controls do not disturb each other.
SLIDERS = [
    ("stride.size", "RRLLLLRR"),
    ("stride.kernel", "RRLLLLRR"),
    ("stride.stride", "RRLL"),
    ("stride.padding", "RRRLLL"),
    ("stride.dilation", "RRLL"),
    ("dotprod.row", "++--"),
    ("dotprod.col", "++--"),
    ("actpool.gain", "RRRLLL"),
    ("actpool.pool_size", "RRRRLLLL"),
    ("actpool.pool_stride", "RRLLLR"),
    ("actpool.batch", "RRLLLLRR"),
    ("rf.across", "RRRLLL"),
    ("rf.down", "RRRLLL"),
]
# (widget key, option labels to click in turn) for the segmented controls and selectboxes.
SWITCHES = [
    ("kernel.border", ["Mirror", "None", "Zeros"]),
    ("kernel.kernel", ["Laplacian", "Gaussian 5×5", "Sobel x (vertical edges)"]),
    ("actpool.activation", ["Sigmoid", "tanh", "ReLU"]),
    ("filters.resolution", ["Full size", "64×64, as in training"]),
    ("filters.stage", ["after batch norm and ReLU", "convolution output"]),
]


def wait_for_runs(log_path: Path, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(read_runs(log_path)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(read_runs(log_path))} of {count} script runs logged")
        time.sleep(0.01)


def settle(log_path: Path, quiet_s: float = 0.4) -> None:
    """Wait until no new run has been logged for `quiet_s` (the page has caught up)."""
    count, since = len(read_runs(log_path)), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.05)
        now = len(read_runs(log_path))
        if now != count:
            count, since = now, time.monotonic()


def widget(page, key: str):
    block = page.locator(f".st-key-{key.replace('.', '-')}")
    block.scroll_into_view_if_needed()
    return block


def act(page, log_path: Path, do) -> list[dict]:
    """Perform one change and return the script runs it caused."""
    before = len(read_runs(log_path))
    do()
    wait_for_runs(log_path, before + 1)
    settle(log_path)
    return read_runs(log_path)[before:]


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2, help="times through the whole list of controls")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    log_path = Path(tempfile.mkdtemp()) / "runs.jsonl"
    proc, url = start_timed_server(log_path)  # every script run's server and CPU time
    slider_ms: dict[str, list[float]] = {key: [] for key, _ in SLIDERS}
    switch_ms: dict[str, list[float]] = {key: [] for key, _ in SWITCHES}
    slider_cpu_ms: dict[str, list[float]] = {key: [] for key, _ in SLIDERS}
    switch_cpu_ms: dict[str, list[float]] = {key: [] for key, _ in SWITCHES}
    whole_page_moves = 0
    try:
        wait_healthy(url)
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.set_default_timeout(180_000)
            page.goto(url)  # the home page first: the app shell registers its navigation
            page.wait_for_selector("h1", timeout=180_000)
            wait_for_runs(log_path, 1)
            page.goto(f"{url}/convolutions?kernel.image={IMAGE}")
            page.locator(".st-key-quiz-convolutions-weight_sharing").wait_for(state="attached")
            settle(log_path, 2.0)
            first_page = read_runs(log_path)[-1]["ms"] / 1000
            # Leaky ReLU enables the slope slider; time it with the others.
            for repeat in range(args.repeats + 1):  # the first pass warms the caches and is not counted
                for key, moves in SLIDERS:
                    block = widget(page, key)
                    for move in moves:
                        if move in "RL":
                            slider = block.locator("input[type=range]")
                            runs = act(
                                page,
                                log_path,
                                lambda s=slider, m=move: s.press(f"Arrow{'Right' if m == 'R' else 'Left'}"),
                            )
                        else:
                            test_id = "stNumberInputStepUp" if move == "+" else "stNumberInputStepDown"
                            button = block.locator(f'button[data-testid="{test_id}"]')
                            runs = act(page, log_path, button.click)
                        if repeat:
                            slider_ms[key].extend(r["ms"] for r in runs)
                            slider_cpu_ms[key].extend(r["cpu_ms"] for r in runs)
                            whole_page_moves += not all(r["fragment"] for r in runs)
                for key, labels in SWITCHES:
                    for label in labels:
                        block = widget(page, key)
                        if key == "kernel.kernel":

                            def choose(b=block, text=label):
                                b.locator("input").click()
                                page.get_by_role("option", name=text, exact=True).click()
                        else:

                            def choose(b=block, text=label):
                                b.get_by_role("radio", name=text, exact=True).click()

                        runs = act(page, log_path, choose)
                        if repeat:
                            switch_ms[key].extend(r["ms"] for r in runs)
                            switch_cpu_ms[key].extend(r["cpu_ms"] for r in runs)
            browser.close()
    finally:
        stop(proc)

    every_slider = [t for times in slider_ms.values() for t in times]
    every_slider_cpu = [t for times in slider_cpu_ms.values() for t in times]
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(f"convolution page on a 512×512 image ({IMAGE}); first whole-page run: {first_page * 1000:.0f} ms")
    print(f"machine load average at the end: {load} (wall time grows with it; script-thread CPU time does not)")
    print(f"{'control':22s} {'runs':>4s} {'wall p50':>9s} {'wall p95':>9s} {'cpu p50':>8s} {'cpu p95':>8s}")
    rows = [
        *zip(slider_ms.items(), slider_cpu_ms.values(), strict=True),
        *zip(switch_ms.items(), switch_cpu_ms.values(), strict=True),
    ]
    for (key, times), cpu in rows:
        if times:
            print(
                f"{key:22s} {len(times):4d} {statistics.median(times):9.0f} {percentile(times, 95):9.0f}"
                f" {statistics.median(cpu):8.0f} {percentile(cpu, 95):8.0f}"
            )
    p50, p95 = statistics.median(every_slider), percentile(every_slider, 95)
    cpu_p95 = percentile(every_slider_cpu, 95)
    print(
        f"every slider change, {len(every_slider)} runs: server time p50 {p50:.0f} ms, p95 {p95:.0f} ms"
        f" (script-thread CPU p95 {cpu_p95:.0f} ms)"
    )
    if whole_page_moves:
        print(f"note: {whole_page_moves} slider moves triggered a whole-page run instead of a fragment run")
    verdict = "met" if p95 <= BUDGET_MS else "NOT met"
    print(f"every slider change, server time p95 {p95:.0f} ms (budget p95 <= {BUDGET_MS:.0f} ms: {verdict})")
    return {"p50_ms": p50, "p95_ms": p95, "cpu_p95_ms": cpu_p95, "first_page_ms": first_page * 1000}


if __name__ == "__main__":
    main()
