"""Which explanations are a campaign's, and how faithful they are.

Explanations are shared by content: a campaign whose activations another campaign already verbalized
with the same NLA checkpoint and sampling writes no new rows and reuses them. So a campaign's
explanations are never "the rows its runs wrote" but **its activations' explanations under the NLA
setting (checkpoint, sampling key, samples per vector) of its runs**, whichever run wrote them. Every
count and fidelity figure on the dashboard, in the reports and in ``campaign status`` is taken over
exactly that set (:func:`setting_explanations`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select

from audits.store import SQLAActivation, SQLACampaign, SQLAExplanation, SQLARun, Store
from audits.themes.rates import campaign_id_of


@dataclass(frozen=True)
class NLASetting:
    """One NLA checkpoint and sampling setting a campaign's runs used (or, before any run, its spec's)."""

    campaign: str
    campaign_id: int
    checkpoint: str | None
    """The checkpoint id the runs recorded (None before the first run)."""
    sampling_key: str | None
    samples: int
    """Explanation samples per vector."""
    stage: str | None
    """The NLA's training stage from its sidecar (``init`` for an untrained NLA)."""
    layer: int | None
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    """Theme id -> detector -> the threshold a sample's score must reach to count as a hit."""
    run_id: int | None = None
    """The newest run with this setting."""

    @property
    def untrained(self) -> bool:
        """The NLA is an untrained ``init`` one."""
        return self.stage == "init"


def _setting(campaign: str, campaign_id: int, run_id: int, provenance: dict[str, Any], samples: int) -> NLASetting:
    meta = provenance.get("nla_meta") or {}
    spec_samples = ((provenance.get("spec") or {}).get("sampling") or {}).get("samples")
    return NLASetting(
        campaign, campaign_id, provenance.get("checkpoint_id"), provenance.get("sampling_key"),
        int(spec_samples or samples), meta.get("stage"), meta.get("layer"), provenance.get("thresholds") or {},
        run_id,
    )  # fmt: skip


def nla_settings(store: Store, campaign: str) -> list[NLASetting]:
    """Every (checkpoint, sampling) a campaign's runs used, newest run first; empty before any run."""
    campaign_id = campaign_id_of(store, campaign)
    with store.session() as session:
        spec = session.scalar(select(SQLACampaign.spec_json).where(SQLACampaign.id == campaign_id)) or {}
        runs = session.execute(
            select(SQLARun.id, SQLARun.provenance_json)
            .where(SQLARun.campaign_id == campaign_id)
            .order_by(SQLARun.id.desc())
        ).all()
    samples = int((spec.get("sampling") or {}).get("samples", 1))
    settings: dict[tuple[Any, Any], NLASetting] = {}
    for run_id, provenance in runs:
        setting = _setting(campaign, campaign_id, run_id, provenance or {}, samples)
        settings.setdefault((setting.checkpoint, setting.sampling_key), setting)
    return list(settings.values())


def nla_setting(store: Store, campaign: str, checkpoint: str | None = None) -> NLASetting:
    """The setting of the campaign's newest run (its newest run with ``checkpoint`` when given); before any
    run, the spec's sample count with no checkpoint."""
    for setting in nla_settings(store, campaign):
        if checkpoint in (None, setting.checkpoint):
            return setting
    campaign_id = campaign_id_of(store, campaign)
    with store.session() as session:
        spec = session.scalar(select(SQLACampaign.spec_json).where(SQLACampaign.id == campaign_id)) or {}
    samples = int((spec.get("sampling") or {}).get("samples", 1))
    return NLASetting(campaign, campaign_id, checkpoint, None, samples, None, None)


def campaign_activation_keys(campaign_id: int) -> Select:
    """The activation keys of a campaign's selected tokens."""
    return select(SQLAActivation.activation_key).where(SQLAActivation.campaign_id == campaign_id)


def setting_explanations(setting: NLASetting, *columns: Any) -> Select:
    """``select(*columns)`` (default: the whole row) over the campaign's explanations under ``setting``: its
    activations' samples ``0 .. samples-1`` by that checkpoint and sampling, whichever run wrote them."""
    query = select(*columns) if columns else select(SQLAExplanation)
    return query.where(
        SQLAExplanation.activation_key.in_(campaign_activation_keys(setting.campaign_id)),
        SQLAExplanation.checkpoint_id == setting.checkpoint,
        SQLAExplanation.sampling_key == setting.sampling_key,
        SQLAExplanation.sample_index < setting.samples,
    )


@dataclass(frozen=True)
class Fidelity:
    """How faithful a campaign's explanations under one setting are (AR reconstruction of the activation)."""

    setting: NLASetting
    by_status: dict[str, int]
    """The campaign's explanations counted by parse status (``ok``, ``unclosed``, ...)."""
    fve_known: int
    """Parsed explanations with an FVE (an NLA without a stored baseline gives none)."""
    fve: dict[str, float | None]
    """``mean``, ``p10``, ``median``, ``p90`` of FVE over the parsed explanations."""
    cos: dict[str, float | None]
    """The same for cos."""
    fve_below_zero: int
    """Parsed explanations whose FVE is below 0 (worse than predicting the mean vector)."""

    @property
    def explanations(self) -> int:
        """Every explanation of the campaign under this setting, whatever its status."""
        return sum(self.by_status.values())

    @property
    def parsed(self) -> int:
        """Explanations that parsed (status ``ok``): the only ones scored and counted in rates."""
        return self.by_status.get("ok", 0)


def _stats(values: np.ndarray) -> dict[str, float | None]:
    if not len(values):
        return dict.fromkeys(("mean", "p10", "median", "p90"))
    p10, median, p90 = np.percentile(values, [10, 50, 90])
    return {"mean": float(values.mean()), "p10": float(p10), "median": float(median), "p90": float(p90)}


def fidelity_summary(store: Store, campaign: str, checkpoint: str | None = None) -> Fidelity:
    """Status counts and FVE / cos of the campaign's explanations under its newest setting (its newest
    setting with ``checkpoint`` when given)."""
    setting = nla_setting(store, campaign, checkpoint)
    query = setting_explanations(setting, SQLAExplanation.status, SQLAExplanation.fve, SQLAExplanation.cos)
    with store.session() as session:
        rows = session.execute(query).all() if setting.sampling_key else []
    by_status: dict[str, int] = {}
    for status, _, _ in rows:
        by_status[status] = by_status.get(status, 0) + 1
    parsed = [(fve, cos) for status, fve, cos in rows if status == "ok"]
    fve = np.array([f for f, _ in parsed if f is not None], dtype=float)
    cos = np.array([c for _, c in parsed if c is not None], dtype=float)
    return Fidelity(setting, by_status, len(fve), _stats(fve), _stats(cos), int((fve < 0).sum()))


def explanation_count(store: Store, setting: NLASetting) -> int:
    """How many explanations the campaign has under ``setting`` (one index-backed count)."""
    if not setting.sampling_key:
        return 0
    query = setting_explanations(setting, func.count())
    with store.session() as session:
        return session.scalar(query) or 0
