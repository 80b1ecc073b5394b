"""Explanation rows/s ingested into SQLite (WAL) through the runner's write path.

Builds a fresh store, registers a run, then writes synthetic explanations exactly as the runner
does: engine results -> ``_explanation_row`` -> ``insert_ignore`` in one committed transaction per
verbalizer batch. Prints rows/s (target >= 5,000). Run it with::

    .venv/bin/python benchmarks/store.py [--rows 50000] [--batch 128]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

from audits.runner import _explanation_row
from audits.store import SQLACampaign, SQLAExplanation, SQLARun, insert_ignore, open_store, upgrade
from nla.engine import Explanation
from nla.parsing import Status


def synthetic(n: int) -> list[Explanation]:
    """Explanations shaped like real ones (three short paragraphs, scored)."""
    text = (
        'Chat about a dessert recipe in a cooking assistant\'s reply.\n\nThe phrase "mug cake" sets up quantities.\n\n'
        'Final token "flour" expects a measure such as "four tablespoons".'
    )
    return [
        Explanation(
            i // 2,
            i % 2,
            hashlib.sha256(str(i // 2).encode()).hexdigest(),
            text,
            Status.OK,
            f"<explanation>\n{text}\n</explanation>",
            48,
            "stop",
            0.8,
            0.4,
            0.2,
        )  # fmt: skip
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=128, help="rows per commit (64 vectors x 2 samples)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.db")
        upgrade(path)
        with open_store(path) as store:
            with store.session() as s:
                campaign = SQLACampaign(name="bench", spec_json={}, spec_hash="0" * 64)
                s.add(campaign)
                s.flush()
                run = SQLARun(campaign_id=campaign.id, provenance_json={}, executor="bench")
                s.add(run)
                s.flush()
                run_id = run.id
            results = synthetic(args.rows)
            start = time.perf_counter()
            for i in range(0, len(results), args.batch):
                rows = [
                    _explanation_row(run_id, "ckpt@bench", "s" * 64, r, 0.1)
                    for r in results[i : i + args.batch]
                ]
                with store.session() as s:
                    insert_ignore(s, SQLAExplanation, rows)
            seconds = time.perf_counter() - start
            again = time.perf_counter()
            with store.session() as s:
                skipped = insert_ignore(
                    s,
                    SQLAExplanation,
                    [_explanation_row(run_id, "ckpt@bench", "s" * 64, r, 0.1) for r in results[: args.batch]],
                )
            resume_ms = (time.perf_counter() - again) * 1e3
            size_mb = Path(path).stat().st_size / 1e6
    print(f"rows        {args.rows} explanations, {args.batch} per committed batch, SQLite WAL")
    print(f"ingest      {args.rows / seconds:,.0f} rows/s ({seconds:.2f} s) (target >= 5,000 rows/s)")
    print(f"re-insert   {args.batch} duplicate rows ignored in {resume_ms:.1f} ms, inserted {skipped}")
    print(f"db size     {size_mb:.1f} MB")


if __name__ == "__main__":
    main()
