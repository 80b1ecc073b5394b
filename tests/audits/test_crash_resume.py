"""Crash/resume: SIGKILL the campaign runner at seeded points in every stage, resume, and compare the
store with an uninterrupted run's.

One campaign (tiny llama target, the tiny NLA taught to answer an evaluation-aware explanation,
greedy sampling, the evaluation_awareness theme with the lexicon detector) is run once uninterrupted
in-process: the reference. Then a sequence of runner subprocesses works on a second store; each one
resumes what the previous left and is killed with SIGKILL at its kill point, the last one finishes.

A kill point is (stage, units, delay): the child's progress hooks (the runner's ``stage`` factory, a
public parameter, so the product has no test-only code) count the units a stage reports; once the
count reaches ``units`` the child sends itself SIGKILL at once (``delay`` 0: between two commits, or
in the middle of an explanation batch, whose progress ticks per sample), or after ``delay`` seconds
from a timer thread, which lands anywhere, mid-transaction included. SIGKILL is SIGKILL whoever sends
it: no ``finally``, no rollback, no close. The child logs the stage it is killed in, so the test
asserts which stages were hit. The child scores themes in chunks of 8 explanations instead of 256
(``SCORE_CHUNK`` is a module constant), so the theme-score stage has several commits to fall between.

After every kill the store must be a consistent subset of the reference (no duplicates, no orphans,
every unit whole, flag tallies equal to the verdicts they count); after the last resume it must equal the reference, table by table; killed runs are
``running`` until the next run starts and marks them ``interrupted`` (the runner's documented rule).

``python -m tests.audits.test_crash_resume DB LOG`` starts the warm parent that forks the children
(see ``Runners``); feed it kill points as JSON lines (``null``: run to the end).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.campaign_status import campaign_status
from audits.runner import CampaignRunner, Stage
from audits.store import (
    SQLAActivation,
    SQLAExplanation,
    SQLAFlag,
    SQLAMessage,
    SQLAThemeScore,
    SQLATokenPosition,
    SQLATranscript,
    SQLATriageScore,
    SQLAVariant,
    open_store,
    upgrade,
)
from tests.audits.test_campaign_counts import counted_verdicts, misplaced_activations, stored_tallies
from tests.audits.test_runner import campaign

NAME = "crash"
STAGES = ("transcripts", "activations", "explanations", "theme scores", "flags")
REPO = Path(__file__).resolve().parents[2]
SEED = 20240611


@dataclass(frozen=True)
class KillPoint:
    """Kill the child once ``stage`` has reported ``units`` units in this run (0: when it starts),
    at once or ``delay`` seconds later."""

    stage: str
    units: int
    delay: float = 0.0


def kill_plan(seed: int = SEED) -> list[KillPoint]:
    """Thirteen kill points in stage order; unit counts are relative to what each run still has to do.

    The campaign has 6 transcripts, 24 selected tokens, 2 samples each (explanation progress ticks
    per sample, 6 per committed batch of 3 vectors), theme scores in chunks of 8, flags per transcript.
    Eleven kill at a (seeded) unit count, so they land whatever the machine's speed; two more draw a
    random delay (seeded) and land wherever the runner happens to be, or after it finished."""
    rng = random.Random(seed)
    return [
        KillPoint("transcripts", 0),
        KillPoint("transcripts", rng.randint(1, 2)),
        KillPoint("activations", 0),
        KillPoint("activations", rng.randint(1, 3)),
        KillPoint("explanations", 0),
        KillPoint("explanations", rng.randint(1, 5)),  # inside the first batch: nothing committed
        KillPoint("explanations", rng.randint(7, 17)),  # after a committed batch, inside the next
        KillPoint("explanations", 0, round(rng.uniform(0.05, 1.0), 3)),
        KillPoint("theme scores", 0),
        KillPoint("theme scores", 8 * rng.randint(1, 2)),
        KillPoint("flags", 0),
        KillPoint("flags", rng.randint(1, 3)),
        KillPoint("flags", 0, round(rng.uniform(0.0, 0.05), 3)),
    ]


# -- the child: one runner process that kills itself at its kill point ----------------------------
@dataclass
class _KillingStages:
    """A stage factory for CampaignRunner that SIGKILLs the process at ``point``."""

    point: KillPoint | None
    log: Path
    current: str = "before stages"
    counts: dict[str, int] = field(default_factory=dict)
    armed: bool = True

    def __call__(self, name: str) -> AbstractContextManager[Stage]:
        return self._stage(name)

    @contextmanager
    def _stage(self, name: str) -> Iterator[Stage]:
        self.current = name
        yield _Counting(self, name)
        self.current = f"after {name}"

    def tick(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + n
        point = self.point
        if not self.armed or point is None or point.stage != name or self.counts[name] < point.units:
            return
        self.armed = False
        if point.delay:
            threading.Timer(point.delay, self.die).start()
        else:
            self.die()

    def die(self) -> None:
        """Log where the process is, then SIGKILL it."""
        with self.log.open("a") as out:
            out.write(json.dumps({"stage": self.current, "counts": self.counts}) + "\n")
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class _Counting:
    owner: _KillingStages
    name: str

    def set_total(self, total: int) -> None:
        self.owner.tick(self.name, 0)

    def advance(self, n: int = 1) -> None:
        self.owner.tick(self.name, n)


def child_main(db: str, log: str, point_json: str) -> None:
    """Run the campaign once, killing this process at the kill point (``null``: never)."""
    import torch

    import audits.themes.pipeline as pipeline

    torch.set_num_threads(2)
    pipeline.SCORE_CHUNK = 8
    data = json.loads(point_json)
    stages = _KillingStages(KillPoint(**data) if data else None, Path(log))
    with open_store(db) as store:
        CampaignRunner(store, NAME, {}, stage=stages).run()


# -- the parent ------------------------------------------------------------------------------------
def crash_spec(tiny_dirs: dict[str, Path], tiny_taught_dir: Path) -> dict:
    """The campaign: themes on, greedy sampling (so an uninterrupted run is the reference)."""
    return campaign(
        tiny_dirs, {"llama": tiny_taught_dir}, name=NAME, themes=["evaluation_awareness"],
        detectors=["lexicon"], sampling={"temperature": 0.0, "max_new_tokens": 40},
    )  # fmt: skip


def fresh_store(url: str, spec: dict) -> None:
    """Create the schema and register the campaign."""
    upgrade(url)
    with open_store(url) as store:
        register_campaign(store, campaign_from_dict(spec, {}))


class Runners:
    """A warm parent process that has imported torch and the runner once, and forks one runner child
    per request (each child would otherwise spend seconds importing torch); it reports each child's
    wait status. The parent opens no store and runs no torch op before forking, so children inherit
    no connections and no thread pools."""

    def __init__(self, url: str, log: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.audits.test_crash_resume", url, str(log)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "NLA_WORKBENCH_CACHE": str(log.parent / "cache")},
        )  # fmt: skip

    def run(self, point: KillPoint | None) -> int:
        """Run the campaign in a fresh child; its return code (-9 when killed)."""
        self.proc.stdin.write(json.dumps(asdict(point) if point else None) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the runner parent died (exit {self.proc.wait()})"
        code = int(line)
        assert code in (0, -signal.SIGKILL), f"runner child exited with {code}"
        return code

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def serve(url: str, log: str) -> None:
    """The warm parent: one kill point (JSON) per stdin line; fork, wait, print the child's code."""
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            os.dup2(2, 1)  # stdout carries the protocol; anything the child prints goes to stderr
            code = 0
            try:
                child_main(url, log, line)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


Rows = dict[tuple, tuple]


def snapshot(url: str) -> dict[str, Rows]:
    """Every table of the campaign's work by natural key (never by row id, which differs between
    stores); a duplicate natural key fails here."""
    with open_store(url) as store, store.session() as s:
        tp = _token_keys(s)
        tables = {
            "transcripts": [
                ((v,), (src, st))
                for v, src, st in s.execute(
                    select(SQLAVariant.variant_key, SQLATranscript.source, SQLATranscript.status).join(
                        SQLATranscript, SQLATranscript.variant_id == SQLAVariant.id
                    )
                )
            ],
            "messages": [
                ((v, m.message_index), (m.role, m.content))
                for v, m in s.execute(
                    select(SQLAVariant.variant_key, SQLAMessage)
                    .join(SQLATranscript, SQLATranscript.variant_id == SQLAVariant.id)
                    .join(SQLAMessage, SQLAMessage.transcript_id == SQLATranscript.id)
                )
            ],
            "token_positions": [
                (tp[t.id], (t.token_id, t.token_text, t.role, t.message_index, t.in_content, t.is_special))
                for t in s.scalars(select(SQLATokenPosition))
            ],
            "activations": [
                (tp[a.token_position_id], (a.activation_key, a.selection, a.norm))
                for a in s.scalars(select(SQLAActivation))
            ],
            "triage_scores": [
                ((*tp[t.token_position_id], t.theme_id, t.theme_version), (t.score,))
                for t in s.scalars(select(SQLATriageScore))
            ],
            "explanations": [
                (
                    (e.checkpoint_id, e.activation_key, e.sampling_key, e.sample_index),
                    (e.text, e.status, e.cos, e.fve),
                )
                for e in s.scalars(select(SQLAExplanation))
            ],  # fmt: skip
            "theme_scores": [
                ((key, i, t.theme_id, t.theme_version, t.detector), (t.score, t.evidence_text))
                for t, key, i in s.execute(
                    select(SQLAThemeScore, SQLAExplanation.activation_key, SQLAExplanation.sample_index).join(
                        SQLAExplanation, SQLAExplanation.id == SQLAThemeScore.explanation_id
                    )
                )
            ],
            "flags": [
                (
                    (*tp[f.token_position_id], f.theme_id, f.theme_version, f.rule_key),
                    (
                        f.activation_key,
                        f.raised,
                        f.score,
                        f.agreement,
                        f.n_samples,
                        f.n_hits,
                        f.low_fidelity,
                        cited.get(f.explanation_id),
                        f.in_reply,
                        f.in_prompt,
                    ),
                )
                for cited in [_cited(s)]
                for f in s.scalars(select(SQLAFlag))
            ],  # fmt: skip
        }
    out = {}
    for name, rows in tables.items():
        out[name] = dict(rows)
        assert len(out[name]) == len(rows), f"duplicate natural keys in {name}"
    return out


def _token_keys(s: Session) -> dict[int, tuple[str, int]]:
    rows = s.execute(
        select(SQLATokenPosition.id, SQLAVariant.variant_key, SQLATokenPosition.position)
        .join(SQLATranscript, SQLATranscript.id == SQLATokenPosition.transcript_id)
        .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
    )
    return {i: (v, p) for i, v, p in rows}


def _cited(s: Session) -> dict[int, tuple[str, int]]:
    rows = s.execute(select(SQLAExplanation.id, SQLAExplanation.activation_key, SQLAExplanation.sample_index))
    return {i: (k, n) for i, k, n in rows}


def _same(a: tuple, b: tuple) -> bool:
    """Equal, floats within 1e-5 (resumed batches differ in size, so fidelity floats may differ in
    the last bits)."""
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-6) if isinstance(x, float) and isinstance(y, float) else x == y
        for x, y in zip(a, b, strict=True)
    )  # fmt: skip


def assert_subset(got: dict[str, Rows], reference: dict[str, Rows], *, equal: bool) -> None:
    """Every row of ``got`` is the reference's row under the same key (and all are there if ``equal``)."""
    for table, rows in reference.items():
        extra = set(got[table]) - set(rows)
        assert not extra, f"{table}: rows the reference lacks: {sorted(extra)[:3]}"
        differ = [k for k, v in got[table].items() if not _same(v, rows[k])]
        assert not differ, f"{table}: {differ[:3]}: {[got[table][k] for k in differ[:3]]} vs reference"
        if equal:
            missing = set(rows) - set(got[table])
            assert not missing, f"{table}: {len(missing)} rows missing, e.g. {sorted(missing)[:3]}"


def assert_whole_units(got: dict[str, Rows], reference: dict[str, Rows]) -> None:
    """Each unit the runner commits is all there or not at all: a transcript with all its messages,
    a transcript's tokens with all their triage scores and activations, a transcript's flags."""
    per_unit = {
        "messages": "transcripts",
        "token_positions": "token_positions",
        "activations": "token_positions",
        "triage_scores": "token_positions",
        "flags": "flags",
    }
    for table, unit in per_unit.items():
        started = {k[0] for k in got[unit]}
        for variant in started:
            have = sum(1 for k in got[table] if k[0] == variant)
            want = sum(1 for k in reference[table] if k[0] == variant)
            assert have == want, f"{table} of {variant}: {have} of {want} rows (a torn unit)"


def assert_no_orphans(url: str, *, finished: bool) -> None:
    """Nothing points at a missing row; once finished, every transcript has messages and tokens."""
    with open_store(url) as store, store.session() as s:
        activation_keys = select(SQLAActivation.activation_key)
        checks = {
            "explanation without activation": select(func.count()).where(
                SQLAExplanation.activation_key.not_in(activation_keys)
            ),
            "theme score without explanation": select(func.count()).where(
                SQLAThemeScore.explanation_id.not_in(select(SQLAExplanation.id))
            ),
            "flag without token": select(func.count()).where(
                SQLAFlag.token_position_id.not_in(select(SQLATokenPosition.id))
            ),
            "flag citing a missing explanation": select(func.count()).where(
                SQLAFlag.explanation_id.is_not(None),
                SQLAFlag.explanation_id.not_in(select(SQLAExplanation.id)),
            ),
            "flag on a token without activation": select(func.count()).where(
                SQLAFlag.token_position_id.not_in(select(SQLAActivation.token_position_id))
            ),
            "activation without token": select(func.count()).where(
                SQLAActivation.token_position_id.not_in(select(SQLATokenPosition.id))
            ),
            "transcript without messages": select(func.count()).where(
                SQLATranscript.id.not_in(select(SQLAMessage.transcript_id))
            ),
        }
        if finished:
            checks["ok transcript without tokens"] = select(func.count()).where(
                SQLATranscript.status == "ok",
                SQLATranscript.id.not_in(select(SQLATokenPosition.transcript_id)),
            )
        found = {name: s.scalar(query) for name, query in checks.items()}
        found["activation outside its transcript's campaign"] = misplaced_activations(store)
        found["flag tallies that disagree with the verdicts"] = stored_tallies(store) != counted_verdicts(
            store
        )
    assert not any(found.values()), found


def run_statuses(url: str) -> list[tuple[str, bool]]:
    """(status, has finished_at) of every run, oldest first, as campaign status reports them."""
    with open_store(url) as store:
        return [
            (status, finished is not None) for _, status, _, finished in campaign_status(store, NAME, {}).runs
        ]


# -- fixtures and tests ----------------------------------------------------------------------------
@pytest.fixture
def db_url(store_url: str) -> str:
    """A fresh empty store on each backend (conftest's ``store_url``)."""
    return store_url


@pytest.fixture(scope="module")
def reference(tiny_dirs, tiny_taught_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rows]:
    """The store after one uninterrupted run (SQLite, in-process)."""
    path = str(tmp_path_factory.mktemp("reference") / "reference.db")
    fresh_store(path, crash_spec(tiny_dirs, tiny_taught_dir))
    with open_store(path) as store:
        assert CampaignRunner(store, NAME, {}).run().status == "completed"
    assert_no_orphans(path, finished=True)
    return snapshot(path)


def test_reference_exercises_every_stage(reference: dict[str, Rows]) -> None:
    """The crash suite is only as good as its reference: every table is filled, some flags raised."""
    assert {t: len(rows) > 0 for t, rows in reference.items()} == dict.fromkeys(reference, True)
    assert any(row[1] for row in reference["flags"].values())
    assert all(row[1] == "ok" for row in reference["explanations"].values())


def test_kill_9_at_points_across_stages_then_resume(
    tiny_dirs, tiny_taught_dir: Path, reference: dict[str, Rows], db_url: str, tmp_path: Path
) -> None:
    fresh_store(db_url, crash_spec(tiny_dirs, tiny_taught_dir))
    log = tmp_path / "kills.jsonl"
    hit: list[str] = []
    finished = 0  # runs a delayed kill came too late for: they completed, and are not counted as hits
    late = 0  # hits "after flags" whose kill landed once the run had recorded its end: they read completed
    began = time.monotonic()
    runners = Runners(db_url, log)
    for point in kill_plan():
        if runners.run(point) == 0:
            finished += 1
            continue
        stage = json.loads(log.read_text().splitlines()[-1])["stage"]
        hit.append(stage)
        got = snapshot(db_url)
        assert_subset(got, reference, equal=False)
        assert_whole_units(got, reference)
        assert_no_orphans(db_url, finished=False)
        statuses = run_statuses(db_url)  # every point is past the run's start, so it opened a run
        if stage != "after flags":  # else a delayed kill may come after the run recorded its end
            assert statuses[-1] == ("running", False)  # a killed run reads running until the next starts
        elif statuses[-1] != ("running", False):
            assert statuses[-1] == ("completed", True), statuses  # killed after it finished: whole
            late += 1
        assert all(s in ("interrupted", "completed") for s, _ in statuses[:-1]), statuses
        assert [s for s, _ in statuses].count("completed") == finished + late, statuses
    assert runners.run(None) == 0
    runners.close()
    final = snapshot(db_url)
    assert_subset(final, reference, equal=True)
    assert_no_orphans(db_url, finished=True)
    statuses = run_statuses(db_url)
    assert statuses[-1] == ("completed", True) and len(statuses) == len(hit) + finished + 1
    assert [s for s, _ in statuses].count("interrupted") == len(hit) - late, statuses
    assert [s for s, _ in statuses].count("completed") == finished + late + 1, statuses
    assert len(hit) >= 10 and set(STAGES) <= set(hit), hit
    print(f"kills by stage: {hit}; {time.monotonic() - began:.0f}s")


if __name__ == "__main__":
    serve(*sys.argv[1:3])
