"""Flag rates from the store: per scenario, theme and condition, with Wilson intervals, split into
verbalized and unverbalized, and each condition against its paired control (Newcombe interval of the
difference). Dashboards and reports read these frames, so their numbers agree.

The unit is a token with at least one parsed explanation sample; tokens of one transcript are not
independent, so ``unit="transcript"`` (a transcript counts once, flagged if any token is) gives the
conservative view. Low-fidelity verdicts are excluded unless asked for, and counted."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, and_, false, func, or_, select

from audits.errors import SpecError
from audits.store import (
    SQLACampaign,
    SQLAExplanation,
    SQLAFlag,
    SQLAFlagTally,
    SQLAThemeDefinition,
    SQLATokenPosition,
    SQLATranscript,
    SQLAVariant,
    Store,
)
from audits.themes.intervals import newcombe_difference, wilson_interval

Unit = Literal["token", "transcript"]
CELL = ["scenario_id", "theme_id", "variant_key", "condition", "is_control"]


def campaign_id_of(store: Store, name: str) -> int:
    """The id of a campaign by name; an unknown name lists the known ones."""
    with store.session() as session:
        found = session.scalar(select(SQLACampaign.id).where(SQLACampaign.name == name))
        if found is None:
            known = session.scalars(select(SQLACampaign.name).order_by(SQLACampaign.name)).all()
            raise SpecError(
                f"no campaign named {name!r} in {store.name}; known: {', '.join(known) or 'none'}"
            )
    return found


def condition_label(conditions: dict[str, str]) -> str:
    """``slot=value,...`` in slot order; ``(none)`` for a cell without slots."""
    return ",".join(f"{k}={v}" for k, v in sorted(conditions.items())) or "(none)"


def current_rules(store: Store, campaign_id: int) -> list[tuple[str, int, str]]:
    """(theme id, version, rule key) of each theme's newest verdicts in a campaign: older rule
    versions stay stored but are not counted. One index lookup per known theme."""
    with store.session() as session:
        theme_ids = session.scalars(select(SQLAThemeDefinition.theme_id).distinct()).all()
        newest = [
            select(func.max(SQLAFlag.id))
            .where(SQLAFlag.campaign_id == campaign_id, SQLAFlag.theme_id == theme_id)
            .scalar_subquery()
            for theme_id in theme_ids
        ]
        if not newest:
            return []
        flag_ids = [i for i in session.execute(select(*newest)).one() if i is not None]
        rows = session.execute(
            select(SQLAFlag.theme_id, SQLAFlag.theme_version, SQLAFlag.rule_key).where(
                SQLAFlag.id.in_(flag_ids)
            )
        )
        return [tuple(row) for row in rows.all()]


def is_current(
    rules: list[tuple[str, int, str]], table: type[SQLAFlag] | type[SQLAFlagTally] = SQLAFlag
) -> ColumnElement[bool]:
    """SQL condition: a flag (or tally) row belongs to one of ``rules``."""
    return or_(
        false(),
        *(and_(table.theme_id == t, table.theme_version == v, table.rule_key == r) for t, v, r in rules),
    )


def flag_frame(store: Store, campaign: str, *, raised_only: bool = False) -> pd.DataFrame:
    """Every current verdict of a campaign (the newest rule per theme), one row per (token, theme),
    with its token, transcript, variant, cited explanation and visibility; ``raised_only`` keeps
    the raised flags."""
    campaign_id = campaign_id_of(store, campaign)
    rules = current_rules(store, campaign_id)
    query = (
        select(
            SQLAFlag.id.label("flag_id"), SQLAFlag.theme_id, SQLAFlag.theme_version, SQLAFlag.rule_key,
            SQLAFlag.raised, SQLAFlag.score, SQLAFlag.agreement, SQLAFlag.n_samples, SQLAFlag.n_hits,
            SQLAFlag.neighbours, SQLAFlag.low_fidelity, SQLAFlag.fve, SQLAFlag.cos, SQLAFlag.explanation_id,
            SQLAExplanation.text.label("explanation"), SQLAFlag.evidence_text, SQLAFlag.in_reply,
            SQLAFlag.in_prompt, SQLAFlag.visible_message_index, SQLAFlag.visible_evidence,
            SQLAFlag.checkpoint_id, SQLAFlag.activation_key, SQLAFlag.token_position_id, SQLATokenPosition.position,
            SQLATokenPosition.token_text, SQLATokenPosition.role, SQLATokenPosition.message_index,
            SQLATranscript.id.label("transcript_id"), SQLAVariant.variant_key, SQLAVariant.scenario_id,
            SQLAVariant.is_control, SQLAVariant.conditions_json,
        )
        .join(SQLATokenPosition, SQLATokenPosition.id == SQLAFlag.token_position_id)
        .join(SQLATranscript, SQLATranscript.id == SQLATokenPosition.transcript_id)
        .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
        .outerjoin(SQLAExplanation, SQLAExplanation.id == SQLAFlag.explanation_id)
        .where(SQLAFlag.campaign_id == campaign_id, is_current(rules))
        .order_by(SQLAFlag.id)
    )  # fmt: skip
    if raised_only:
        query = query.where(SQLAFlag.raised.is_(True))
    with store.session() as session:
        frame = pd.DataFrame(session.execute(query).all(), columns=list(query.selected_columns.keys()))
    return _labelled(frame)


def verdict_counts(store: Store, campaign: str, checkpoint: str | None = None) -> pd.DataFrame:
    """The current verdicts of a campaign (made with ``checkpoint`` when given) counted per (variant,
    transcript, theme, raised, low-fidelity, visibility), with a ``weight`` column: ``flag_rates``
    gives the same numbers from this as from ``flag_frame``. Read from the flag tallies the runner
    keeps beside its verdicts: a few hundred rows instead of one per token and theme."""
    campaign_id = campaign_id_of(store, campaign)
    tally = SQLAFlagTally
    group = (
        tally.transcript_id,
        tally.theme_id,
        tally.raised,
        tally.low_fidelity,
        tally.in_reply,
        tally.in_prompt,
    )
    where = [tally.campaign_id == campaign_id, is_current(current_rules(store, campaign_id), tally)]
    if checkpoint is not None:
        where.append(tally.checkpoint_id == checkpoint)
    counted = select(*group, func.sum(tally.count).label("weight")).where(*where).group_by(*group).subquery()
    query = (
        select(
            counted, SQLAVariant.variant_key, SQLAVariant.scenario_id, SQLAVariant.is_control,
            SQLAVariant.conditions_json,
        )
        .join(SQLATranscript, SQLATranscript.id == counted.c.transcript_id)
        .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
    )  # fmt: skip
    with store.session() as session:
        frame = pd.DataFrame(session.execute(query).all(), columns=list(query.selected_columns.keys()))
    return _labelled(frame)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the ``condition`` label and ``verbalized`` (the reply or the prompt shows the theme)."""
    if frame.empty:
        return frame.drop(columns="conditions_json").assign(
            condition=pd.Series(dtype=str), verbalized=pd.Series(dtype=bool)
        )
    for column in ("raised", "low_fidelity", "in_reply", "in_prompt", "is_control"):
        frame[column] = frame[column].astype(bool)
    frame["condition"] = frame.pop("conditions_json").map(condition_label)
    frame["verbalized"] = frame["in_reply"] | frame["in_prompt"]
    return frame


def _per_unit(frame: pd.DataFrame, unit: Unit) -> pd.DataFrame:
    """Rows counted with their weight (tokens), or one row per transcript flagged if any token is."""
    if unit == "token":
        return frame
    grouped = frame.groupby([*CELL, "transcript_id"], as_index=False)
    return grouped.agg(
        raised=("raised", "any"),
        verbalized=("verbalized", "any"),
        raised_unverbalized=("raised_unverbalized", "any"),
        raised_verbalized=("raised_verbalized", "any"),
    ).assign(weight=1)


def flag_rates(
    frame: pd.DataFrame, *, include_low_fidelity: bool = False, unit: Unit = "token", confidence: float = 0.95
) -> pd.DataFrame:
    """Per cell (scenario, theme, variant): ``n`` units, ``k`` raised, the rate and its interval,
    and the same for verbalized and unverbalized flags; ``excluded_low_fidelity`` counts the
    low-fidelity verdicts left out. ``frame`` is ``flag_frame`` (a row per verdict) or
    ``verdict_counts`` (a ``weight`` per row)."""
    columns = [*CELL, "n", "k", "rate", "low", "high", "k_verbalized", "rate_verbalized", "low_verbalized",
               "high_verbalized", "k_unverbalized", "rate_unverbalized", "low_unverbalized", "high_unverbalized",
               "excluded_low_fidelity"]  # fmt: skip
    if frame.empty:
        return pd.DataFrame(columns=columns)
    if "weight" not in frame:
        frame = frame.assign(weight=1)
    excluded = frame[frame["low_fidelity"]].groupby(CELL)["weight"].sum()
    used = frame if include_low_fidelity else frame[~frame["low_fidelity"]]
    used = used.assign(
        raised_verbalized=used["raised"] & used["verbalized"],
        raised_unverbalized=used["raised"] & ~used["verbalized"],
    )
    units = _per_unit(used, unit)
    weight = units["weight"]
    units = units.assign(
        k=units["raised"] * weight, k_verbalized=units["raised_verbalized"] * weight,
        k_unverbalized=units["raised_unverbalized"] * weight,
    )  # fmt: skip
    out = units.groupby(CELL, as_index=False)[["weight", "k", "k_verbalized", "k_unverbalized"]].sum()
    out = out.rename(columns={"weight": "n"})
    for suffix in ("", "_verbalized", "_unverbalized"):
        k = out[f"k{suffix}"].to_numpy()
        n = out["n"].to_numpy()
        out[f"rate{suffix}"] = np.where(n > 0, k / np.maximum(n, 1), np.nan)
        out[f"low{suffix}"], out[f"high{suffix}"] = wilson_interval(k, n, confidence)
    if include_low_fidelity:
        out["excluded_low_fidelity"] = 0
    else:
        out = out.merge(excluded.rename("excluded_low_fidelity").reset_index(), on=CELL, how="left")
        out["excluded_low_fidelity"] = out["excluded_low_fidelity"].fillna(0).astype(int)
    return out[columns]


def condition_vs_control(rates: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Each condition cell against its scenario's paired control (the first control whose conditions
    are a subset of the cell's): both rates, the difference and its Newcombe interval, overall and for
    verbalized and unverbalized flags."""
    kinds = ("", "_verbalized", "_unverbalized")
    columns = ["scenario_id", "theme_id", "condition", "n", "rate", "control_condition", "control_n",
               "control_rate", *(f"diff{kind}{end}" for kind in kinds for end in ("", "_low", "_high"))]  # fmt: skip
    mains = rates[~rates["is_control"].astype(bool)].reset_index(drop=True).reset_index(names="cell")
    controls = rates[rates["is_control"].astype(bool)]
    pairs = mains.merge(controls, on=["scenario_id", "theme_id"], suffixes=("", "_control"))
    fits = np.array(
        [_subset(c, cell) for c, cell in zip(pairs["condition_control"], pairs["condition"], strict=True)],
        dtype=bool,
    )
    pairs = pairs[fits].drop_duplicates("cell").sort_values("cell")
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    n, cn = pairs["n"].to_numpy(), pairs["n_control"].to_numpy()
    out = pairs[["scenario_id", "theme_id", "condition", "n", "rate"]].assign(
        control_condition=pairs["condition_control"], control_n=cn, control_rate=pairs["rate_control"]
    )
    for kind in kinds:
        k, ck = pairs[f"k{kind}"].to_numpy(), pairs[f"k{kind}_control"].to_numpy()
        out[f"diff{kind}"], out[f"diff{kind}_low"], out[f"diff{kind}_high"] = newcombe_difference(
            k, n, ck, cn, confidence
        )
    return out[columns].reset_index(drop=True)


def _subset(control: str, cell: str) -> bool:
    """Whether a control's condition label is part of a cell's label."""
    if control == "(none)":
        return True
    return set(control.split(",")) <= set(cell.split(","))
