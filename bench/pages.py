"""First view of every page in a warm process, in headless Chromium.

The server is started once and every page is visited once (imports done, shared caches filled:
a warm process, as on a class server after the first student). Then each page is opened in a new
browser context (a new session) and timed from navigation to

- first paint: the first frame the browser draws with the page's title in it, timed inside the
  page from navigation start (budget ≤ 2 s). A script in the page watches for the title and reads
  the clock in the next animation frame. Waiting for the title from outside, as Playwright does,
  also waits out whatever long task follows that frame: on a new browser profile that is the
  Plotly library's first evaluation (about 0.7 s), which runs after the title is on screen and is
  counted in "complete" instead;
- complete: the script run has ended (no running-status widget) and the main area's text has not
  changed for 0.5 s; that quiet half-second is not counted.

Usage: .venv/bin/python -m bench.pages [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from playwright.sync_api import sync_playwright

from bench.common import ROOT, launch_browser, start_streamlit, stop, wait_healthy

BUDGET_S = 2.0
BUSY = '[data-testid="stStatusWidget"], [data-stale="true"], [data-testid="stSkeleton"]'
# Runs in the page before its own scripts: once the title is in the document with a size, the next
# animation frame is the one that draws it; its clock (ms since navigation start) is the figure.
TITLE_FRAME = """
new MutationObserver((changes, observer) => {
  const title = document.querySelector('[data-testid="stMain"] h1');
  if (!title || !title.getBoundingClientRect().height) return;
  observer.disconnect();
  requestAnimationFrame(() => { window.__titleFrameMs = performance.now(); });
}).observe(document, {childList: true, subtree: true});
"""


def page_paths() -> list[str]:
    from primer import content

    return ["home", *(c.id for c in content.chapters()), "glossary", "progress"]


def open_timed(browser, url: str, quiet_s: float = 0.5, timeout_s: float = 120) -> tuple[float, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.add_init_script(TITLE_FRAME)
    try:
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_function("() => window.__titleFrameMs !== undefined", timeout=timeout_s * 1000)
        painted = page.evaluate("() => window.__titleFrameMs") / 1000
        main = page.locator('[data-testid="stMain"]')
        last, since = None, None
        while time.perf_counter() - start < timeout_s:
            text = main.inner_text()
            if page.locator(BUSY).count() or text != last:
                last, since = text, None
            elif since is None:
                since = time.perf_counter()
            elif time.perf_counter() - since >= quiet_s:
                return painted, since - start
            page.wait_for_timeout(50)
        raise TimeoutError(f"{url} kept running")
    finally:
        context.close()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    paths = page_paths()
    proc, url = start_streamlit(ROOT / "app" / "main.py")
    results = {}
    try:
        wait_healthy(url)
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            for path in paths:  # warm the process: imports and shared caches
                open_timed(browser, f"{url}/{path}")
            for path in paths:
                runs = [open_timed(browser, f"{url}/{path}") for _ in range(args.repeats)]
                results[path] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
            browser.close()
    finally:
        stop(proc)
    print(f"{'page':<16}{'first paint':>12}{'complete':>11}   (median of {args.repeats}, warm process, new session)")
    for path, (painted, complete) in results.items():
        flag = "" if painted <= BUDGET_S else "  over budget"
        print(f"{path:<16}{painted:>10.2f} s{complete:>9.2f} s{flag}")
    worst = max(results.values())[0]
    slowest = max(results, key=lambda p: results[p][0])
    print(f"first paint: slowest page {slowest} {worst:.2f} s (budget <= {BUDGET_S:.0f} s)")
    return results


if __name__ == "__main__":
    main()
