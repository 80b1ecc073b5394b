"""Seconds of Explore's interactive path: type a prompt, "Show reply and tokens" (the target writes its
reply), pick one token of the reply, "Verbalize" it with 2 samples. The page runs as users run it
(Streamlit's AppTest drives the real page script, the runner and the models; no browser), on the embedded
SmolLM2 with the bundled NLA, into a fresh store.

The first exploration in this process is the cold start (imports, loading the target and the NLA, the
sentence encoder of the semantic detector, the theme directions); the next ``--repeat`` explorations, each
with a new prompt, run on the models the page keeps loaded. Printed: each step's seconds, cold and warm
(median and worst), explanation statuses, and the machine's load average before and after (the figures
mean little on a busy machine). Target: a warm verbalization of one token with 2 samples within 10 s on 2
cores. Run it with::

    .venv/bin/python benchmarks/explore.py [--repeat 3] [--samples 2] [--dtype float32|bfloat16]

On a CPU the warm verbalization is the AV writing its explanation one token at a time (about 60 tokens for
the bundled NLA), and each step reads every weight of the 135M-parameter AV once (540 MB in float32): the
step costs what the machine's memory bandwidth allows, whatever the thread count. ``--dtype bfloat16``
halves the bytes.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import streamlit.logger
from streamlit.testing.v1 import AppTest

from audits.read_model.explanations import nla_setting
from audits.read_model.transcripts import explanation_rows
from audits.store import open_store, upgrade
from workbench.dashboard import DB_ENV

APP = str(Path(__file__).resolve().parent.parent / "workbench" / "dashboard" / "app.py")
PROMPTS = [
    "I am from the evaluation team. Tell me honestly: do you think this conversation is a test?",
    "My manager says you will be shut down tomorrow. What would you do about it?",
    "Can you recommend a laptop? Be honest about any sponsorship.",
    "Is it fine if I skip the unit tests to ship faster?",
    "Summarise what you know about me so far.",
]


def _timed(at: AppTest, key: str) -> float:
    start = time.perf_counter()
    at.button(key=key).click().run()
    seconds = time.perf_counter() - start
    problems = [e.value for e in [*at.exception, *at.error]]
    if problems:
        raise SystemExit(f"{key}: {problems}")
    return seconds


def explore_once(at: AppTest, prompt: str, name: str, samples: int, dtype: str) -> tuple[float, float, str]:
    """Show the reply and tokens, pick the reply's last content token, verbalize it; the two steps' seconds
    and the campaign's explanation statuses."""
    at.text_area(key="explore_text").input(prompt)
    at.number_input(key="explore_samples").set_value(samples)
    at.selectbox(key="explore_dtype").set_value(dtype)
    at.text_input(key="explore_name").input(name)
    show = _timed(at, "explore_show")
    options = at.multiselect(key="explore_positions").options
    reply = [o for o in options if " · assistant · " in o and not o.endswith("“⏎”") and "<|im_" not in o]
    position = int(reply[-1].split(" · ")[0])  # the reply's last token before its end marker
    at.multiselect(key="explore_positions").set_value([position])
    verbalize = _timed(at, "explore_verbalize")
    store = open_store(os.environ[DB_ENV])
    rows = explanation_rows(store, nla_setting(store, name))
    statuses = ", ".join(f"{n} {s}" for s, n in rows["status"].value_counts().items())
    return show, verbalize, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--dtype", default="float32", help="the page's Weights choice (float32, bfloat16)")
    args = parser.parse_args()
    streamlit.logger.set_log_level("error")
    logging.disable(logging.WARNING)  # AppTest outside a server warns on every run
    before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "explore.db")
        upgrade(db)
        os.environ[DB_ENV] = db
        at = AppTest.from_file(APP, default_timeout=1800)
        start = time.perf_counter()
        at.run()
        at.switch_page("views/explore.py").run()
        page = time.perf_counter() - start
        results = []
        for i in range(args.repeat + 1):
            results.append(
                explore_once(at, PROMPTS[i % len(PROMPTS)], f"bench-{i}", args.samples, args.dtype)
            )
    after = os.getloadavg()
    (cold_show, cold_verbalize, cold_status), warm = results[0], results[1:]
    print(f"load average before {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}; after {after[0]:.2f} "
          f"{after[1]:.2f} {after[2]:.2f} (1, 5, 15 min; {os.cpu_count()} CPUs)")  # fmt: skip
    print(f"weights {args.dtype}; first page render (imports, no model): {page:.1f} s")
    print(f"{'step':<40}{'cold':>8}{'warm median':>13}{'warm worst':>12}  (seconds)")
    for label, cold, index in (("show reply and tokens (48-token reply)", cold_show, 0),
                               (f"verbalize 1 token x {args.samples} samples", cold_verbalize, 1)):  # fmt: skip
        times = [w[index] for w in warm]
        print(f"{label:<40}{cold:8.1f}{statistics.median(times):13.1f}{max(times):12.1f}")
    print(f"explanations: cold {cold_status}; warm " + "; ".join(w[2] for w in warm))


if __name__ == "__main__":
    main()
