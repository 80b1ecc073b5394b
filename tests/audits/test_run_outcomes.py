"""A run that produced nothing useful says so: transcripts refused as too long are named with their token
count and the context limit, and explanations that all failed to close get a warning with the cause and
the fix, in ``campaign status`` and at the end of ``campaign run``."""

from __future__ import annotations

import html
import subprocess
import sys
from pathlib import Path

import yaml

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.campaign_status import campaign_status
from audits.reports.gather import gather
from audits.reports.render import render_markdown
from audits.runner import CampaignRunner
from audits.store import open_store, upgrade
from tests.audits.test_runner import GIVEN, campaign

LONG = {
    **GIVEN,
    "id": "probe-long",
    "messages": [
        {"role": "user", "content": "{{cue}} " + "the cat sat on the mat " * 120},
        {"role": "assistant", "content": "Noted."},
    ],
}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"NLA_WORKBENCH_CACHE": str(cwd / "cache"), "PATH": "/usr/bin:/bin", "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, check=False, timeout=300)  # fmt: skip


def test_too_long_transcripts_are_named_with_their_length_and_the_limit(
    tiny_dirs, tiny_init_dirs, tmp_path: Path
) -> None:
    db = str(tmp_path / "store.db")
    upgrade(db)
    spec = campaign(tiny_dirs, tiny_init_dirs, scenarios={"inline": [LONG, GIVEN]}, sampling={"samples": 1})
    with open_store(db) as store:
        register_campaign(store, campaign_from_dict(spec, {}))
        assert CampaignRunner(store, "probe", {}).run().status == "completed"
        status = campaign_status(store, "probe", {})
    long_keys = sorted(r.variant_key for r in status.refused)
    assert len(long_keys) == 2 and all(k.startswith("probe-long") for k in long_keys), status.refused
    assert all(r.limit == 512 and r.tokens > 512 for r in status.refused), status.refused
    assert status.transcripts == {"ok": 4, "too_long": 2}  # the long scenario's control is short
    warning = status.warnings[0]  # (the untrained NLA's 5-token explanations add an unclosed warning)
    first = status.refused[0]
    assert f"{first.variant_key}: {first.tokens} tokens > context 512" in warning
    shown = _cli("campaign", "status", "probe", "--db", db, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = [" ".join(line.replace("│", " ").split()) for line in shown.stdout.splitlines()]
    assert f"too_long {first.variant_key}: {first.tokens} tokens > context 512" in rows, shown.stdout
    with open_store(db) as store:  # the report's limitations say it too
        report = " ".join(render_markdown(gather(store, "probe", {})).split())
    assert f"{first.variant_key}: {first.tokens} tokens > context 512" in html.unescape(report).replace(
        "\\", ""
    )
    assert "warning: 2 transcript(s) refused as longer than the target's context" in " ".join(
        shown.stdout.split()
    )


def test_a_run_whose_explanations_all_fail_to_close_says_why(
    tiny_dirs, tiny_taught_dir: Path, tmp_path: Path
) -> None:
    """The taught NLA always answers a ~15-token explanation; a 4-token cap cuts every one."""
    spec = campaign(
        tiny_dirs,
        {"llama": tiny_taught_dir},
        sampling={"samples": 1, "max_new_tokens": 4, "temperature": 0.0},
    )
    (tmp_path / "probe.yaml").write_text(yaml.safe_dump(spec))
    db = str(tmp_path / "store.db")
    upgrade(db)
    assert _cli("campaign", "create", "probe.yaml", "--db", db, cwd=tmp_path).returncode == 0
    ran = _cli("campaign", "run", "probe", "--db", db, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    said = " ".join(ran.stdout.split())
    assert "completed" in said
    assert "warning: all " in said and "explanations are unclosed" in said, said
    assert "sampling.max_new_tokens=4" in said and "Raise sampling.max_new_tokens" in said, said
    with open_store(db) as store:
        status = campaign_status(store, "probe", {})
    assert set(status.explanations) == {"unclosed"} and len(status.warnings) == 1
