"""Scale figures: verbalization throughput per executor, and store ingest rate per database.

(a) Explanations/s and generated tokens/s on a fixed set of vectors, through the same executor
    seam the campaign runner uses: in-process (torch threads = ``--threads``, default all cores)
    against Ray with 1 and 2 actors (one torch thread and one Ray CPU each, on a local cluster of
    ``--cpus`` CPUs). Target: the embedded SmolLM2-135M with its untrained ``init`` NLA at layer
    20, as ``nla-workbench demo`` uses; greedy decoding, so every executor should produce the same
    explanations (checked and printed). Each executor is warmed up (one short batch per worker)
    before timing; start-up (model loads, cluster start) is reported separately.
(b) Explanation rows/s through ``_explanation_row`` + ``insert_ignore``, one committed
    transaction per batch as the runner writes them: SQLite (WAL, temporary file) and PostgreSQL
    at ``--pg-url`` (a scratch database; the rows written are deleted afterwards).

Prints figures only, no pass/fail. Run it with::

    .venv/bin/python benchmarks/scale.py [--vectors 64] [--max-new-tokens 32] [--batch 32]
        [--rows 20000] [--pg-url postgresql+psycopg://user@host/db]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import ray
import torch
from sqlalchemy import delete
from store import synthetic
from transformers.utils import logging as hf_logging
from verbalize import TARGET, sample_vectors

from audits.runner import _explanation_row
from audits.store import SQLACampaign, SQLAExplanation, SQLARun, insert_ignore, open_store, upgrade
from nla.checkpoint import NLA
from nla.engine import Explanation
from nla.executors import EngineSpec, Executor, InProcessExecutor, ray_executor
from nla.pipeline import load_target
from nla.sampling import SamplingParams

LAYER = 20


@dataclass(frozen=True)
class Throughput:
    """One executor's timed pass over the vectors."""

    label: str
    threads: str
    startup_s: float
    seconds: float
    busy_s: float
    """Engine seconds summed over batches: over ``seconds`` it says how many batches ran at once."""
    explanations: list[Explanation]

    @property
    def tokens(self) -> int:
        return sum(e.n_tokens for e in self.explanations)

    def line(self, reference: list[Explanation]) -> str:
        same = "yes" if _texts(self.explanations) == _texts(reference) else "NO"
        return (
            f"{self.label:<16} {self.threads:<18} {self.startup_s:>9.1f} {self.seconds:>8.1f} "
            f"{len(self.explanations) / self.seconds:>8.2f} {self.tokens / self.seconds:>8.1f} "
            f"{self.busy_s / self.seconds:>8.2f}   {same}"
        )


def _texts(explanations: list[Explanation]) -> list[tuple[str, int, str]]:
    """Raw outputs by (vector, sample): executors may finish batches in any order."""
    return sorted((e.vector_digest, e.sample_index, e.raw) for e in explanations)


def timed_pass(
    label: str, executor: Executor, workers: int, spec: EngineSpec, nla: NLA, vectors: torch.Tensor,
    sampling: SamplingParams, startup_s: float,
) -> Throughput:  # fmt: skip
    """Start, warm up each of the ``workers``, then time one pass over ``vectors`` in batches of the spec's size."""
    began = time.perf_counter()
    executor.start(spec, nla)
    warm = SamplingParams(temperature=0, max_new_tokens=2)
    list(executor.explain([vectors[:1]] * workers, warm, 1))
    startup_s += time.perf_counter() - began
    batches = [vectors[i : i + spec.batch_size] for i in range(0, len(vectors), spec.batch_size)]
    began = time.perf_counter()
    done = list(executor.explain(batches, sampling, 1))
    seconds = time.perf_counter() - began
    busy = sum(r.seconds_each * len(r.explanations) for r in done)
    return Throughput(label, "", startup_s, seconds, busy, [e for r in done for e in r.explanations])


def verbalization(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    target = load_target(TARGET)
    spec = EngineSpec("init", TARGET, LAYER, torch.float32, "cpu", False, args.batch)
    nla = spec.load_nla()
    load_s = time.perf_counter() - began
    vectors = sample_vectors(target, LAYER, args.vectors)
    sampling = SamplingParams(temperature=0, top_p=1.0, max_new_tokens=args.max_new_tokens)
    print(
        f"\n(a) verbalization: {args.vectors} vectors x 1 sample, up to {args.max_new_tokens} new tokens, greedy, "
        f"batch {args.batch}; {TARGET} + init NLA, layer {LAYER}, CPU float32, {os.cpu_count()} cores"
    )
    with InProcessExecutor() as local:
        run = timed_pass("in-process", local, 1, spec, nla, vectors, sampling, load_s)
        runs = [replace(run, threads=f"{torch.get_num_threads()} torch")]
    began = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
    cluster_s = time.perf_counter() - began
    try:
        for actors in (1, 2):
            with ray_executor(actors=actors, threads=1) as pool:
                label = f"ray {actors} actor{'s' if actors > 1 else ''}"
                run = timed_pass(label, pool, actors, spec, nla, vectors, sampling, cluster_s)
                per_actor = "+".join(str(w.threads) for w in pool.workers)
                runs.append(replace(run, threads=f"{per_actor} torch ({actors} proc)"))
            cluster_s = 0.0
    finally:
        ray.shutdown()
    print(
        f"{'executor':<16} {'threads':<18} {'startup s':>9} {'wall s':>8} {'expl/s':>8} {'tok/s':>8} {'overlap':>8}   same text"
    )
    for run in runs:
        print(run.line(runs[0].explanations))
    print(
        "startup: in-process = target + NLA load; ray = cluster start (first pool only) + actor loads + warm-up. "
        "Wall/throughput exclude start-up;\n"
        "overlap = engine seconds summed over batches / wall (batches running at once)."
    )


def ingest_rate(url: str, rows: int, batch: int) -> float:
    """Explanation rows/s written to the store at ``url`` the runner's way; the rows are removed after."""
    upgrade(url)
    tag = uuid.uuid4().hex[:12]
    checkpoint = f"ckpt@bench-{tag}"
    with open_store(url) as store:
        with store.session() as s:
            campaign = SQLACampaign(name=f"bench-{tag}", spec_json={}, spec_hash="0" * 64)
            s.add(campaign)
            s.flush()
            run = SQLARun(campaign_id=campaign.id, provenance_json={}, executor="bench")
            s.add(run)
            s.flush()
            campaign_id, run_id = campaign.id, run.id
        results = synthetic(rows)
        began = time.perf_counter()
        for i in range(0, rows, batch):
            chunk = [_explanation_row(run_id, checkpoint, "s" * 64, r, 0.1) for r in results[i : i + batch]]
            with store.session() as s:
                insert_ignore(s, SQLAExplanation, chunk)
        seconds = time.perf_counter() - began
        with store.session() as s:
            s.execute(delete(SQLAExplanation).where(SQLAExplanation.run_id == run_id))
            s.execute(delete(SQLARun).where(SQLARun.id == run_id))
            s.execute(delete(SQLACampaign).where(SQLACampaign.id == campaign_id))
    return rows / seconds


def ingest(args: argparse.Namespace) -> None:
    print(f"\n(b) store ingest: {args.rows} explanation rows, {args.ingest_batch} per committed transaction")
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"SQLite (WAL)   {ingest_rate(str(Path(tmp) / 'bench.db'), args.rows, args.ingest_batch):>9,.0f} rows/s"
        )
    if args.pg_url is None:
        print(
            "PostgreSQL     skipped: give a scratch database with --pg-url postgresql+psycopg://USER@HOST:PORT/DB"
        )
        return
    print(f"PostgreSQL     {ingest_rate(args.pg_url, args.rows, args.ingest_batch):>9,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=64, help="vectors verbalized per executor")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32, help="vectors per engine batch (the unit sharded)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads, in-process")
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray cluster")
    parser.add_argument("--rows", type=int, default=20_000, help="explanation rows per ingest run")
    parser.add_argument("--ingest-batch", type=int, default=128, help="rows per committed transaction")
    parser.add_argument("--pg-url", help="SQLAlchemy URL of a scratch PostgreSQL database")
    parser.add_argument("--skip-verbalization", action="store_true", help="only the ingest figures")
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    if not args.skip_verbalization:
        verbalization(args)
    ingest(args)


if __name__ == "__main__":
    main()
