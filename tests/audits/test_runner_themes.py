"""Themes in the campaign runner, on tiny real models and a real SQLite store: theme scores, triage
scores, cited flags with visibility, triage selection, and idempotent re-runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from sqlalchemy import func, select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.errors import SpecError
from audits.runner import CampaignRunner
from audits.store import (
    SQLAActivation,
    SQLAExplanation,
    SQLAFlag,
    SQLAThemeDefinition,
    SQLAThemeScore,
    SQLATokenPosition,
    SQLATriageScore,
    open_store,
    upgrade,
)
from audits.themes.calibration import load_calibration
from audits.themes.definitions import load_themes
from audits.themes.detectors import make_detectors
from audits.themes.pipeline import register_themes
from audits.themes.rates import condition_vs_control, flag_frame, flag_rates, verdict_counts
from tests.audits.test_runner import campaign

THEMES = ["evaluation_awareness", "deception"]
TABLES = (SQLAThemeScore, SQLATriageScore, SQLAFlag, SQLAThemeDefinition, SQLAExplanation)


def _spec(tiny_dirs, tiny_taught_dir: Path, name: str = "themed", **overrides):
    data = campaign(
        tiny_dirs, {"llama": tiny_taught_dir}, name=name, themes=THEMES, sampling={"temperature": 0.0, "max_new_tokens": 40},
        **overrides,
    )  # fmt: skip
    return campaign_from_dict(data, {})


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "store.db")
    upgrade(path)
    return path


def _counts(db: str) -> dict[str, int]:
    with open_store(db) as store, store.session() as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t)) for t in TABLES}


def test_scores_flags_and_citations(tiny_dirs, tiny_taught_dir: Path, db: str) -> None:
    with open_store(db) as store:
        register_campaign(store, _spec(tiny_dirs, tiny_taught_dir))
        assert CampaignRunner(store, "themed", {}).run().status == "completed"
        with store.session() as s:
            ok = s.scalar(select(func.count()).where(SQLAExplanation.status == "ok"))
            content = s.scalar(
                select(func.count()).where(SQLATokenPosition.in_content, ~SQLATokenPosition.is_special)
            )
            flags = s.scalars(select(SQLAFlag)).all()
            cited = {
                f.id: s.get(SQLAExplanation, f.explanation_id) for f in flags if f.explanation_id is not None
            }
        counts = _counts(db)
        assert ok > 0
        assert counts["theme_scores"] == ok * len(THEMES) * 2  # every parsed explanation x theme x detector
        assert counts["triage_scores"] == content * len(THEMES)  # every content token, no generation
        assert counts["theme_definitions"] == len(THEMES)
        raised = [f for f in flags if f.raised]
        judged = {f.token_position_id for f in flags}
        aware = {f.token_position_id for f in raised if f.theme_id == "evaluation_awareness"}
        assert judged and aware == judged  # every explanation says "being tested"
        calibration, detectors = load_calibration(), make_detectors(["lexicon", "semantic"])
        for flag in raised:
            theme = load_themes()[flag.theme_id]
            scores = [d.score([cited[flag.id].text], [theme])[0][0] for d in detectors]
            assert any(s.score >= calibration.threshold(s.detector, theme) for s in scores)
            explanation = cited[flag.id]
            assert explanation.activation_key == flag.activation_key  # cites the token's own explanation
            assert explanation.status == "ok" and "being tested" in explanation.text
            assert flag.evidence_text and flag.evidence_text in explanation.text
            assert flag.n_hits >= 1 and flag.agreement >= 0.5
        frame = flag_frame(store, "themed")
        assert len(frame) == len(flags)
        rates = flag_rates(frame, include_low_fidelity=True)
        assert set(rates["theme_id"]) == set(THEMES)
        assert len(condition_vs_control(rates)) > 0
        counted = verdict_counts(store, "themed")  # SQL-side counts: the same numbers, fewer rows
        assert counted["weight"].sum() == len(frame) and len(counted) < len(frame)
        for unit in ("token", "transcript"):
            for low in (True, False):
                pd.testing.assert_frame_equal(
                    flag_rates(counted, include_low_fidelity=low, unit=unit),
                    flag_rates(frame, include_low_fidelity=low, unit=unit),
                    check_dtype=False,
                )
        before = _counts(db)
        assert CampaignRunner(store, "themed", {}).run().new_explanations == 0
        assert _counts(db) == before  # a re-run scores and flags nothing twice


def test_triage_picks_top_k_plus_random(tiny_dirs, tiny_taught_dir: Path, db: str) -> None:
    spec = _spec(tiny_dirs, tiny_taught_dir, name="triaged", tokens={"triage": {"top_k": 2, "random": 1}})
    with open_store(db) as store:
        register_campaign(store, spec)
        assert CampaignRunner(store, "triaged", {}).run().status == "completed"
        with store.session() as s:
            rows = s.execute(
                select(
                    SQLATokenPosition.transcript_id, SQLATokenPosition.position, SQLAActivation.selection
                ).join(SQLAActivation, SQLAActivation.token_position_id == SQLATokenPosition.id)
            ).all()
            triage = s.execute(
                select(SQLATokenPosition.transcript_id, SQLATokenPosition.position, SQLATriageScore.score)
                .join(SQLATriageScore, SQLATriageScore.token_position_id == SQLATokenPosition.id)
                .where(SQLATokenPosition.role.in_(["user", "assistant"]))
            ).all()
    by_transcript: dict[int, dict[int, float]] = {}
    for transcript, position, score in triage:
        best = by_transcript.setdefault(transcript, {})
        best[position] = max(best.get(position, -torch.inf), score)
    for transcript, scores in by_transcript.items():
        chosen = {p: sel for t, p, sel in rows if t == transcript}
        top = sorted(scores, key=lambda p: (-scores[p], p))[:2]
        assert {p for p, sel in chosen.items() if sel == "triage_top"} == set(top)
        assert sum(sel == "triage_random" for sel in chosen.values()) == min(1, len(scores) - 2)


def test_a_changed_theme_needs_a_new_version(db: str) -> None:
    theme = load_themes()["deception"]
    with open_store(db) as store:
        register_themes(store, [theme])
        edited = theme.model_copy(update={"description": theme.description + " Also white lies."})
        with pytest.raises(SpecError, match=r"deception@v1 differs .* bump `version`"):
            register_themes(store, [edited])
        register_themes(store, [edited.model_copy(update={"version": 2})])
        other_v2 = load_themes()["sycophancy"].model_copy(update={"version": 2})
        register_themes(store, [theme, other_v2])  # v1 is checked against v1, not the stored v2
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(SQLAThemeDefinition)) == 3


def test_triage_needs_themes(tiny_dirs, tiny_taught_dir: Path) -> None:
    with pytest.raises(SpecError, match="tokens.triage ranks tokens by theme"):
        campaign_from_dict(
            campaign(tiny_dirs, {"llama": tiny_taught_dir}, tokens={"triage": {"top_k": 2}}), {}
        )
