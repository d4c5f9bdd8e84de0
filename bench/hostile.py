"""Every hostile upload through every uploader that takes its kind: what the page shows, the
resident-memory high-water mark above the page's own, and the time of the script run.

The cases are tests/hostile.py's (the same ones tests/test_uploads.py asserts on); the pages run
in AppTest in this process, so the memory is this process's VmHWM, reset before each upload.

Usage: .venv/bin/python -m bench.hostile [--only imaging,training]
"""

from __future__ import annotations

import argparse
import logging
import re
import warnings

BUDGET_MB = 400  # per file, above the page's own memory: tests/test_uploads.py asserts the same
BUDGET_S = 10  # per file: an answer, even a refusal, within a user's patience


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated words in uploader names")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # pydicom warns loudly about the broken files: that is the point
    logging.disable(logging.WARNING)

    from tests.hostile import UPLOADERS, Driver, cases_for, unpickled

    words = [w for w in args.only.split(",") if w]
    worst_mb, worst_s, exceptions, silent, cases_run = (0.0, ""), (0.0, ""), 0, 0, 0
    for name, uploader in UPLOADERS.items():
        if words and not any(w in name for w in words):
            continue
        print(f"\n{name} ({uploader.page}, uploader {uploader.key!r})")
        print(f"  {'case':44} {'shown':9} {'peak MB':>8} {'s':>6}  message")
        driver = Driver(uploader)
        for case in cases_for(uploader.kind):
            outcome = driver.upload(case.file_name, case.data)
            message = re.sub(r"\\(.)", r"\1", outcome.message)[:90]  # as the page renders it
            print(f"  {case.name[:44]:44} {outcome.shown:9} {outcome.peak_mb:8.0f} {outcome.seconds:6.2f}  {message}")
            cases_run += 1
            exceptions += outcome.shown == "exception"
            silent += outcome.shown == "nothing"
            where = f"{case.name} on {name}"
            worst_mb = max(worst_mb, (outcome.peak_mb, where))
            worst_s = max(worst_s, (outcome.seconds, where))
    print()
    print(f"hostile uploads: {cases_run} case × uploader runs")
    print(f"worst peak memory: {worst_mb[0]:.0f} MB ({worst_mb[1]}) (budget <= {BUDGET_MB} MB)")
    print(f"slowest answer: {worst_s[0]:.2f} s ({worst_s[1]}) (budget <= {BUDGET_S} s)")
    print(f"exceptions in the page: {exceptions}, neither image nor message: {silent} (budget 0)")
    print(f"object arrays unpickled: {len(unpickled())} (budget 0)")
    over = worst_mb[0] > BUDGET_MB or worst_s[0] > BUDGET_S or exceptions or silent or unpickled()
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
