"""Terminology page budgets, measured on this machine:

- first view: a fresh server (every cache cold) → the terminology page fully rendered in headless
  Chromium, script finished (budget: within 10 s on 2 cores); then the same page in a new
  browser session with the server's caches warm;
- server time of a control change: AppTest script-run time after moving one control of each lab
  (median and 95th percentile over repeats; the whole page script reruns, so this is the upper
  bound of what one lab's change costs).

Usage: .venv/bin/python -m bench.terminology [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.common import ROOT, launch_browser, percentile, start_streamlit, stop, wait_healthy

CHANGES = [  # (widget kind, key, two values to alternate between)
    ("slider", "tasks.example", (4, 5)),
    ("select_slider", "feat.contrast", (1.5, 2.0)),
    ("select_slider", "curve.num_train", (100, 1000)),
    ("select_slider", "noise.rate", (0.1, 0.3)),
    ("select_slider", "imbal.prevalence", (0.1, 0.2)),
    ("select_slider", "leak.images_per_patient", (2, 10)),
]


def wait_idle(page, quiet_seconds: float = 0.8) -> float:
    """Wait until no script run is in progress; return the time the page went quiet."""
    quiet_since = None
    while True:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        now = time.perf_counter()
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since > quiet_seconds:
            return quiet_since
        page.wait_for_timeout(50)


def first_view() -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    proc, url = start_streamlit(ROOT / "app" / "main.py")
    try:
        wait_healthy(url)
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            # The entry point first, so the timed views below measure a warm process.
            home = browser.new_page()
            home.goto(url)
            home.wait_for_selector("h1", timeout=120_000)
            wait_idle(home)
            timings = []
            for _ in range(2):  # cold caches, then warm caches in a new session
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                start = time.perf_counter()
                page.goto(f"{url}/terminology")
                page.wait_for_selector("h1", timeout=120_000)
                done = wait_idle(page)
                assert page.locator('[data-testid="stException"]').count() == 0
                timings.append(done - start)
                page.close()
            browser.close()
        return timings[0], timings[1]
    finally:
        stop(proc)


def control_changes(repeats: int) -> dict[str, list[float]]:
    from streamlit import logger

    from tests.conftest import run_page

    logger.set_log_level("error")  # AppTest outside `streamlit run` warns on every call

    at = run_page("views/terminology.py")
    out: dict[str, list[float]] = {}
    for kind, key, values in CHANGES:
        times = []
        for i in range(repeats):
            widget = getattr(at, kind)(key=key)
            widget.set_value(values[i % 2])
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
            assert not at.exception, at.exception[0].value
        out[key] = times
    return out


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cold, warm = first_view()
    print(f"first view, cold server caches: {cold:.1f} s (budget 10 s)")
    print(f"same page, new session, warm caches: {warm:.1f} s")
    changes = control_changes(args.repeats)
    everything = [t for times in changes.values() for t in times]
    for key, times in changes.items():
        print(f"{key:28s} median {statistics.median(times) * 1000:6.0f} ms   max {max(times) * 1000:6.0f} ms")
    print(
        f"all control changes: p50 {percentile(everything, 50) * 1000:.0f} ms, p95 {percentile(everything, 95) * 1000:.0f} ms"
    )
    return {"cold": cold, "warm": warm, "changes": changes}


if __name__ == "__main__":
    main()
