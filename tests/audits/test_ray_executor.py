"""The Ray executor on a real local 2-CPU Ray cluster and tiny real models: the same campaign run
in-process and over 2 actors gives the same explanations, the driver alone writes them, progress
still counts every explanation, and a missing or unreachable Ray fails with one clear message.

A cluster takes a few seconds to start, so one is shared by the module."""

import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import ray
from sqlalchemy import select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.runner import CampaignRunner, Stage
from audits.store import SQLAExplanation, SQLARun, open_store, upgrade
from nla.executors import RAY_INSTALL, Executor, ExecutorError, InProcessExecutor, make_executor, ray_executor
from tests.audits.test_runner import campaign


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


class CountingStage:
    """A stage that remembers its total and how far it advanced."""

    def __init__(self) -> None:
        self.total, self.done = 0, 0

    def set_total(self, total: int) -> None:
        self.total = total

    def advance(self, n: int = 1) -> None:
        self.done += n


class Stages:
    """A stage factory keeping every stage it made, by name."""

    def __init__(self) -> None:
        self.made: dict[str, list[CountingStage]] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[Stage]:
        stage = CountingStage()
        self.made.setdefault(name, []).append(stage)
        yield stage


def _run(db: str, specs: list, executor: Executor, stages: Stages) -> int:
    """Run each campaign into a fresh store; the number of new explanations."""
    upgrade(db)
    new = 0
    with open_store(db) as store:
        for spec in specs:
            register_campaign(store, spec)
            result = CampaignRunner(store, spec.name, {}, stage=stages, executor=executor).run()
            assert result.status == "completed"
            new += result.new_explanations
    return new


def _stored(db: str) -> tuple[dict[tuple, tuple], list[str]]:
    """Explanations by (sampling key, activation key, sample index), and every run's executor."""
    e = SQLAExplanation
    with open_store(db) as store, store.session() as s:
        rows = s.execute(
            select(
                e.sampling_key, e.activation_key, e.sample_index, e.text, e.status, e.raw_output, e.n_tokens,
                e.finish, e.cos, e.fve,
            )
        ).all()  # fmt: skip
        executors = s.scalars(select(SQLARun.executor).order_by(SQLARun.id)).all()
    return {tuple(r[:3]): tuple(r[3:]) for r in rows}, list(executors)


def test_ray_actors_match_the_in_process_run(tiny_dirs, tiny_init_dirs, tmp_path: Path, ray_cluster) -> None:
    """Greedy and seeded sampling: identical text, raw output and scores, whichever actor ran a batch.

    (Untrained tiny NLAs rarely close their tags, so cos/fve are mostly None here.)"""
    specs = [
        campaign_from_dict(
            campaign(tiny_dirs, tiny_init_dirs, name=name, sampling={"temperature": t, "samples": 1}), {}
        )
        for name, t in (("greedy", 0), ("sampled", 1))
    ]
    local_db, ray_db = str(tmp_path / "local.db"), str(tmp_path / "ray.db")
    ray_stages = Stages()
    with InProcessExecutor() as local:
        local_new = _run(local_db, specs, local, Stages())
    with ray_executor(actors=2) as pool:
        ray_new = _run(ray_db, specs, pool, ray_stages)
        assert [(w.device, w.threads) for w in pool.workers] == [("cpu", 1), ("cpu", 1)]
        with open_store(ray_db) as store:  # resuming a finished run starts no actor work
            assert CampaignRunner(store, "greedy", {}, executor=pool).run().new_explanations == 0
    expected, local_runs = _stored(local_db)
    got, ray_runs = _stored(ray_db)
    assert local_runs == ["in-process"] * 2 and ray_runs == ["ray"] * 3
    assert ray_new == local_new == len(expected) > 4 * specs[0].nla.batch_size  # several batches per actor
    assert got.keys() == expected.keys()
    assert len({raw for _, _, raw, *_ in expected.values()}) > 10  # varied outputs, not one repeated string
    for key, (*exact, cos, fve) in expected.items():
        assert list(got[key][:-2]) == exact, key
        assert got[key][-2:] == pytest.approx((cos, fve), abs=1e-5), key
    counted = [(stage.done, stage.total) for stage in ray_stages.made["explanations"]]
    assert counted == [(len(expected) // 2, len(expected) // 2)] * 2  # progress counts every explanation


def test_unreachable_ray_address_is_one_clear_error() -> None:
    with pytest.raises(ExecutorError, match="could not reach a Ray cluster at 127.0.0.1:1"):
        make_executor("ray", address="127.0.0.1:1", actors=2)
    with pytest.raises(ExecutorError, match="apply to --executor ray only"):
        make_executor("in-process", actors=2)


def test_cli_without_ray_installed_says_how_to_install_it(tmp_path: Path) -> None:
    """The CLI imports no Ray; blocking the import (as if it were absent) gives the install hint."""
    db = str(tmp_path / "store.db")
    upgrade(db)
    script = (
        "import sys; import workbench.cli.app as app; assert 'ray' not in sys.modules, 'CLI imported ray'; "
        "sys.modules['ray'] = None; "
        f"sys.argv = ['nla-workbench', 'campaign', 'run', 'probe', '--db', {db!r}, '--executor', 'ray']; app.main()"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert RAY_INSTALL in done.stderr
