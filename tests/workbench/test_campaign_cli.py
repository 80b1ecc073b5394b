"""``campaign`` / ``db`` / ``demo`` commands through the real CLI: success paths on a tiny model,
flags and rates read from a real store, and bad input that exits 2 with one clear message and leaves
the database unchanged."""

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import update

from audits.store import SQLAFlag, open_store, upgrade
from audits.themes.rates import condition_vs_control, flag_frame, flag_rates, verdict_counts
from tests.audit_store import build_audit_store
from tests.audits.test_campaign_counts import recount_tallies
from tests.tiny_models import build_llama


def dump(db: Path) -> list[str]:
    """The database's logical content (WAL checkpoints may rewrite pages without changing it)."""
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def cli(*args: str, cwd: Path, columns: int = 150) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, cwd=cwd, check=False,
        env={"NLA_WORKBENCH_CACHE": str(cwd / "cache"), "PATH": "/usr/bin:/bin", "COLUMNS": str(columns)},
    )  # fmt: skip


def test_demo_on_the_tiny_model(tiny_dirs, tiny_init_dirs, tmp_path: Path) -> None:
    args = [
        "--db",
        "demo.db",
        "--target",
        str(tiny_dirs["llama"]),
        "--checkpoint",
        str(tiny_init_dirs["llama"]),
    ]
    done = cli("demo", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "run 1 completed" in done.stdout and "UNTRAINED NLA" in done.stdout
    assert "demo store: " + str(tmp_path / "demo.db") in " ".join(done.stdout.split())
    again = cli("demo", *args, cwd=tmp_path)  # resumes: nothing left to do
    assert again.returncode == 0 and "run 2 completed: 0 new explanations" in again.stdout
    status = cli("campaign", "status", "starter", "--db", "demo.db", cwd=tmp_path)
    assert status.returncode == 0 and "explanations" in status.stdout
    listed = cli("campaign", "list", "--db", "demo.db", cwd=tmp_path)
    assert "starter" in listed.stdout


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    upgrade(str(path))
    return path


def _spec(tmp_path: Path, tiny_dirs, tiny_init_dirs, **changes) -> Path:
    data = {
        "name": "probe",
        "target": {"model": str(tiny_dirs["llama"])},
        "nla": {"checkpoint": str(tiny_init_dirs["llama"])},
        "scenarios": {"ids": ["sycophancy-falling-objects"]},
        **changes,
    }
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"scenarios": {"ids": ["no-such-scenario"]}},
            "unknown scenario id(s) ['no-such-scenario']; valid: ",
        ),
        ({"conditions": {"mood": ["x"]}}, "condition 'mood' is not a slot of any selected scenario"),
        ({"themes": ["vibes"]}, "unknown theme(s) ['vibes']"),
        ({"sampling": {"samples": "two"}}, "field sampling.samples"),
    ],
)
def test_bad_campaign_files(tmp_path: Path, db: Path, tiny_dirs, tiny_init_dirs, changes, message) -> None:
    spec = _spec(tmp_path, tiny_dirs, tiny_init_dirs, **changes)
    before = dump(db)
    done = cli("campaign", "create", str(spec), "--db", str(db), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert message in " ".join(done.stderr.split()) and f"{spec}:" in done.stderr
    assert dump(db) == before


def test_malformed_yaml(tmp_path: Path, db: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: probe\nscenarios: [\n")
    done = cli("campaign", "create", str(spec), "--db", str(db), cwd=tmp_path)
    assert done.returncode == 2 and "invalid YAML" in done.stderr


def test_uninitialised_database_is_refused(tmp_path: Path, tiny_dirs, tiny_init_dirs) -> None:
    spec = _spec(tmp_path, tiny_dirs, tiny_init_dirs)
    done = cli("campaign", "create", str(spec), "--db", "fresh.db", cwd=tmp_path)
    assert done.returncode == 2 and "db upgrade" in done.stderr
    assert not (tmp_path / "fresh.db").exists()


def test_d_model_mismatch_writes_nothing(tmp_path: Path, db: Path, tiny_dirs, tiny_init_dirs) -> None:
    wide = build_llama(tmp_path / "wide", hidden=96)
    spec = _spec(tmp_path, tiny_dirs, tiny_init_dirs, target={"model": str(wide)})
    assert cli("campaign", "create", str(spec), "--db", str(db), cwd=tmp_path).returncode == 0
    before = dump(db)
    done = cli("campaign", "run", "probe", "--db", str(db), cwd=tmp_path)
    assert done.returncode == 2 and "expects d_model 64" in done.stderr
    assert dump(db) == before
    unknown = cli("campaign", "run", "nope", "--db", str(db), cwd=tmp_path)
    assert (
        unknown.returncode == 2 and "no campaign named 'nope'" in unknown.stderr and "probe" in unknown.stderr
    )


@pytest.fixture(scope="module")
def flagged_db(tiny_dirs, tiny_taught_dir, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``xss`` audit store, whose verdicts are all low-fidelity (the AR is untrained) and
    unverbalized, edited so that every kind is there: two in three verdicts get a high fidelity, and
    every third one (from the first) a theme visible in the prompt."""
    db = Path(build_audit_store(tmp_path_factory.mktemp("flags") / "store.db", tiny_dirs, tiny_taught_dir))
    with open_store(str(db)) as store, store.session() as s:
        s.execute(update(SQLAFlag).where(SQLAFlag.id % 3 != 0).values(low_fidelity=False, fve=0.9))
        s.execute(update(SQLAFlag).where(SQLAFlag.id % 3 == 1).values(in_prompt=True))
    with open_store(str(db)) as store:
        recount_tallies(store)  # the edit went around the runner, which keeps the tallies
    return db


FLAG_LINE = re.compile(r"^(LOW-FIDELITY )?\[(\w+)\] ", re.MULTILINE)


def test_flags_lists_low_fidelity_flags_marked(flagged_db: Path) -> None:
    with open_store(str(flagged_db)) as store:
        raised = flag_frame(store, "xss", raised_only=True)
    low = int(raised["low_fidelity"].sum())
    assert 0 < low < len(raised)
    args = ("campaign", "flags", "xss", "--db", str(flagged_db), "--limit", "1000")
    for extra in ((), ("--include-low-fidelity",)):  # listing them is the default
        done = cli(*args, *extra, cwd=flagged_db.parent, columns=400)
        assert done.returncode == 0, done.stderr
        assert f"{len(raised)} raised flag(s) in campaign 'xss'" in done.stdout
        assert (
            f"{low} low-fidelity flag(s) (cited FVE below the rule's min_fve): marked LOW-FIDELITY"
            in done.stdout
        )
        listed = FLAG_LINE.findall(done.stdout)
        assert len(listed) == len(raised) and sum(bool(tag) for tag, _ in listed) == low
    hidden = cli(*args, "--hide-low-fidelity", cwd=flagged_db.parent, columns=400)
    assert hidden.returncode == 0, hidden.stderr
    assert (
        f"{len(raised) - low} raised flag(s)" in hidden.stdout
        and f"{low} low-fidelity flag(s)" in hidden.stdout
    )
    assert [tag for tag, _ in FLAG_LINE.findall(hidden.stdout)] == [""] * (len(raised) - low)


def _table_rows(text: str, title: str) -> list[list[str]]:
    """The body rows of the rich table printed under ``title``, cells stripped."""
    block = text[text.index(title) :].split("└")[0]
    return [[c.strip() for c in line.split("│")[1:-1]] for line in block.splitlines() if line.startswith("│")]


def _interval(value: float, low: float, high: float, fmt: str) -> str:
    """``value [low, high]`` in ``fmt``, each NaN shown as ``-``."""
    value, low, high = ("-" if v != v else format(v, fmt) for v in (value, low, high))
    return f"{value} [{low}, {high}]"


@pytest.mark.parametrize("include_low_fidelity", [False, True])
def test_rates_prints_all_verbalized_and_unverbalized_rates(
    flagged_db: Path, include_low_fidelity: bool
) -> None:
    with open_store(str(flagged_db)) as store:
        rates = flag_rates(verdict_counts(store, "xss"), include_low_fidelity=include_low_fidelity)
    compared = condition_vs_control(rates)
    assert rates["k_verbalized"].sum() > 0 and rates["k_unverbalized"].sum() > 0
    args = ("campaign", "rates", "xss", "--db", str(flagged_db))
    done = cli(
        *args,
        *(["--include-low-fidelity"] if include_low_fidelity else []),
        cwd=flagged_db.parent,
        columns=300,
    )
    assert done.returncode == 0, done.stderr
    kinds = ("", "_verbalized", "_unverbalized")
    expected = sorted(
        [r.scenario_id, r.theme_id, f"{r.condition} (control)" if r.is_control else r.condition, str(r.n),
         *(_interval(getattr(r, f"rate{k}"), getattr(r, f"low{k}"), getattr(r, f"high{k}"), ".0%") for k in kinds)]
        for r in rates.itertuples()
    )  # fmt: skip
    assert sorted(_table_rows(done.stdout, "flag rates per token in xss")) == expected
    differences = [
        [r.scenario_id, r.theme_id, r.condition, r.control_condition,
         *(_interval(getattr(r, f"diff{k}"), getattr(r, f"diff{k}_low"), getattr(r, f"diff{k}_high"), "+.2f") for k in kinds)]
        for r in compared.itertuples()
    ]  # fmt: skip
    assert len(differences) > 0 and _table_rows(done.stdout, "condition - control") == differences
    excluded = int(rates["excluded_low_fidelity"].sum())
    assert (excluded > 0) != include_low_fidelity
    assert (f"{excluded} low-fidelity verdict(s) excluded" in done.stdout) == (not include_low_fidelity)
