"""Cold start: process start → home page painted in headless Chromium, this app vs hello world.

Both servers are started the same way, alternately, in the same run; the figure that matters is
the ratio of medians (budget ≤ 1.3). Usage: .venv/bin/python bench/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from playwright.sync_api import sync_playwright

from bench.common import ROOT, launch_browser, start_streamlit, stop, wait_healthy

APPS = {"hello world": ROOT / "bench" / "hello_app.py", "this app": ROOT / "app" / "main.py"}


def time_to_paint(browser, script) -> float:
    t0 = time.perf_counter()
    proc, url = start_streamlit(script)
    try:
        wait_healthy(url)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("h1", state="visible", timeout=90_000)
        # painted: the browser has produced a frame after the heading appeared
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        elapsed = time.perf_counter() - t0
        page.close()
        return elapsed
    finally:
        stop(proc)


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in APPS}
    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        time_to_paint(browser, APPS["hello world"])  # warm the disk cache for both
        time_to_paint(browser, APPS["this app"])
        for _ in range(args.repeats):
            for name, script in APPS.items():  # alternate so drift hits both alike
                times[name].append(time_to_paint(browser, script))
        browser.close()
    medians = {name: statistics.median(v) for name, v in times.items()}
    ratio = medians["this app"] / medians["hello world"]
    for name, values in times.items():
        print(f"{name:12s} median {medians[name]:.2f} s  runs " + " ".join(f"{v:.2f}" for v in values))
    print(f"ratio this app / hello world: {ratio:.2f}  (budget <= 1.30)")
    return {"hello_s": medians["hello world"], "app_s": medians["this app"], "ratio": ratio}


if __name__ == "__main__":
    main()
