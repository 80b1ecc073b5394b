"""Seconds to render each dashboard page on a store with 100k explanations.

Builds the store through the runner's write path (``benchmarks/dashboard_store.py``), unless
``--db`` names one already built, then runs every page with Streamlit's AppTest (the page script,
its queries and its charts, no browser) and prints, per page, a cold render (Streamlit's data caches
cleared first) and the median and worst of ``--repeat`` warm renders (unchanged data, e.g. a filter
change). Target: every page within 1 s. Run it with::

    .venv/bin/python benchmarks/dashboard.py [--explanations 100000] [--db PATH] [--repeat 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import streamlit as st
import streamlit.logger
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_store import build_store  # noqa: E402

from workbench.dashboard import DB_ENV  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "workbench" / "dashboard" / "app.py")
PAGES = ["campaigns", "triage", "transcript", "review", "compare", "explore", "export"]


def render(page: str, campaign: str, *, cold: bool = False) -> float:
    """Seconds for one run of ``page``, after an untimed first run of the app (AppTest's own set-up,
    such as its scan of installed components, which a server does once at start); ``cold`` clears
    Streamlit's data caches first, as new data in the store does."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["campaign"] = campaign
    at.run()
    if page != "campaigns":
        at.switch_page(f"views/{page}.py")
    if cold:
        st.cache_data.clear()
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    if at.exception or at.error:
        raise SystemExit(f"{page}: {[e.value for e in [*at.exception, *at.error]]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--explanations", type=int, default=100_000)
    parser.add_argument("--db", help="an already built store (skips the build)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.db and not Path(args.db).is_file():
        parser.error(f"--db {args.db}: no such store (leave --db out to build one)")
    streamlit.logger.set_log_level("error")
    logging.disable(logging.WARNING)  # AppTest outside a server warns on every run
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or str(Path(tmp) / "dashboard.db")
        if not args.db:
            start = time.perf_counter()
            counts = build_store(db, args.explanations)
            print(f"built {db}: {counts} in {time.perf_counter() - start:.0f} s")
        os.environ[DB_ENV] = db
        print(f"{'page':<12}{'cold':>8}{'median':>8}{'worst':>8}  (seconds, {args.repeat} repeats)")
        render("explore", "bench")  # warm up: imports and Streamlit's one-time set-up, not a page's cost
        for page in PAGES:
            first = render(page, "bench", cold=True)
            times = [render(page, "bench") for _ in range(args.repeat)]
            print(f"{page:<12}{first:8.2f}{statistics.median(times):8.2f}{max(times):8.2f}")


if __name__ == "__main__":
    main()
