"""Exports hold exactly one campaign's data (on SQLite and PostgreSQL), and CSV cells never run as
spreadsheet formulas."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.reports.exports import COLUMNS, stream_rows, write_export
from audits.runner import CampaignRunner
from audits.store import SQLAActivation, SQLAExplanation, SQLARun, open_store, upgrade
from audits.themes.rates import campaign_id_of
from tests.audits.test_runner import GIVEN, campaign

GREEDY = {"samples": 1, "temperature": 0.0, "max_new_tokens": 4}
SAMPLED = {"samples": 2, "temperature": 1.0, "max_new_tokens": 4}


def _rows(store, name: str) -> list[dict]:
    return [row for chunk in stream_rows(store, name, "explanations") for row in chunk]


@pytest.fixture
def shared(tiny_dirs, tiny_init_dirs, store_url: str) -> str:
    """Three campaigns over the same given transcripts (so the same activations): ``cool`` (greedy, one
    sample), ``hot`` (sampled, two samples) and ``cool-again`` (cool's setting: it reuses cool's rows)."""
    upgrade(store_url)
    with open_store(store_url) as store:
        for name, sampling in (("cool", GREEDY), ("hot", SAMPLED), ("cool-again", GREEDY)):
            spec = campaign(
                tiny_dirs, tiny_init_dirs, name=name, scenarios={"inline": [GIVEN]}, sampling=sampling
            )
            register_campaign(store, campaign_from_dict(spec, {}))
            assert CampaignRunner(store, name, {}).run().status == "completed"
    return store_url


def test_an_export_holds_exactly_its_campaigns_explanations(shared: str) -> None:
    with open_store(shared) as store, store.session() as s:
        keys = {}
        for name in ("cool", "hot", "cool-again"):
            campaign_id = campaign_id_of(store, name)
            provenance = s.scalar(select(SQLARun.provenance_json).where(SQLARun.campaign_id == campaign_id))
            keys[name] = provenance["sampling_key"]
            tokens = s.scalar(select(func.count()).where(SQLAActivation.campaign_id == campaign_id))
            rows = _rows(store, name)
            samples = 1 if name != "hot" else 2
            assert len(rows) == tokens * samples, name  # one row per token and sample, nothing more
            assert {r["sampling_key"] for r in rows} == {provenance["sampling_key"]}, name
            assert {r["checkpoint_id"] for r in rows} == {provenance["checkpoint_id"]}, name
            assert sorted({r["sample_index"] for r in rows}) == list(range(samples)), name
        all_rows = s.scalar(select(func.count()).select_from(SQLAExplanation))
        cool, again = (sorted(r["explanation_id"] for r in _rows(store, n)) for n in ("cool", "cool-again"))
        hot = {r["explanation_id"] for r in _rows(store, "hot")}
    assert keys["cool"] == keys["cool-again"] != keys["hot"]
    assert cool == again  # the reusing campaign exports the rows it reuses
    assert not hot & set(cool) and len(hot | set(cool)) == all_rows


def test_csv_cells_never_start_a_formula(shared: str, tmp_path: Path) -> None:
    payloads = ['=HYPERLINK("https://evil.example","click")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]
    with open_store(shared) as store:
        with store.session() as s:
            ids = s.scalars(select(SQLAExplanation.id).order_by(SQLAExplanation.id)).all()
            for explanation_id, payload in zip(ids, payloads * len(ids), strict=False):
                s.execute(
                    update(SQLAExplanation).where(SQLAExplanation.id == explanation_id).values(text=payload)
                )
        write_export(stream_rows(store, "hot", "explanations"), "explanations", "csv", tmp_path / "x.csv")
        write_export(stream_rows(store, "hot", "explanations"), "explanations", "jsonl", tmp_path / "x.jsonl")
    with (tmp_path / "x.csv").open(newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == [name for name, _, _ in COLUMNS["explanations"]]
    cells = [cell for row in table for cell in row.values()]
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and not _number(c))]
    texts = {row["text"] for row in table}
    assert {"'" + p for p in payloads} <= texts, texts
    raw = {json.loads(line)["text"] for line in (tmp_path / "x.jsonl").read_text().splitlines()}
    assert set(payloads) <= raw  # JSONL keeps every value as it is


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
