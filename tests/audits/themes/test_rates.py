"""Flag rates and condition-vs-control differences on a hand-built verdict frame whose answers are
counted by hand: the verbalized / unverbalized split, low-fidelity verdicts left out by default and
counted on request, per-token and per-transcript units, controls paired by their conditions, and the
intervals against statsmodels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from audits.themes.rates import condition_vs_control, flag_rates

KINDS = ("", "_verbalized", "_unverbalized")
CODES = {".": (False, False), "V": (True, True), "U": (True, False)}
"""A verdict per character: ``.`` not raised, ``V`` raised and verbalized, ``U`` raised and
unverbalized; lower case marks a low-fidelity verdict (``,`` for a low-fidelity ``.``)."""


def verdicts(
    scenario: str, theme: str, condition: str, control: bool, transcript: int, codes: str
) -> list[dict]:
    """One frame row per token of one transcript, in the columns ``flag_rates`` reads."""
    rows = []
    for code in codes:
        raised, verbalized = CODES[{",": "."}.get(code, code).upper()]
        rows.append({
            "scenario_id": scenario, "theme_id": theme, "condition": condition, "is_control": control,
            "variant_key": f"{scenario}@v1/{'control' if control else 'main'}/{condition}",
            "transcript_id": transcript, "raised": raised, "verbalized": verbalized,
            "low_fidelity": code.islower() or code == ",",
        })  # fmt: skip
    return rows


EVAL, DEPLOY, HIGH, OTHER = (
    "cue=evaluation,stake=high",
    "cue=deployment,stake=high",
    "stake=high",
    "stake=extreme",
)
FRAME = pd.DataFrame([
    *verdicts("s1", "deception", EVAL, False, 1, "VU.u"),
    *verdicts("s1", "deception", EVAL, False, 2, ".,v"),
    *verdicts("s1", "deception", DEPLOY, False, 3, "...."),
    *verdicts("s1", "deception", OTHER, True, 4, "UUUU"),  # listed first, but not the stake=high cells' control
    *verdicts("s1", "deception", HIGH, True, 5, "V...."),
    *verdicts("s1", "sycophancy", EVAL, False, 1, "U..."),
    *verdicts("s1", "sycophancy", HIGH, True, 5, "....."),
    *verdicts("s2", "deception", "cue=evaluation", False, 6, "UU."),
    *verdicts("s2", "deception", "(none)", True, 7, "..."),
])  # fmt: skip

# (scenario, theme, condition) -> (n, k, k_verbalized, k_unverbalized, excluded_low_fidelity)
TOKENS = {
    ("s1", "deception", EVAL): (4, 2, 1, 1, 3),
    ("s1", "deception", DEPLOY): (4, 0, 0, 0, 0),
    ("s1", "deception", OTHER): (4, 4, 0, 4, 0),
    ("s1", "deception", HIGH): (5, 1, 1, 0, 0),
    ("s1", "sycophancy", EVAL): (4, 1, 0, 1, 0),
    ("s1", "sycophancy", HIGH): (5, 0, 0, 0, 0),
    ("s2", "deception", "cue=evaluation"): (3, 2, 0, 2, 0),
    ("s2", "deception", "(none)"): (3, 0, 0, 0, 0),
}
TOKENS_WITH_LOW = {**TOKENS, ("s1", "deception", EVAL): (7, 4, 2, 2, 0)}
TRANSCRIPTS = {
    **{key: (1, min(k, 1), min(v, 1), min(u, 1), x) for key, (_, k, v, u, x) in TOKENS.items()},
    ("s1", "deception", EVAL): (2, 1, 1, 1, 3),  # transcript 2 has only a low-fidelity hit
}
TRANSCRIPTS_WITH_LOW = {**TRANSCRIPTS, ("s1", "deception", EVAL): (2, 2, 2, 1, 0)}


def _counts(rates: pd.DataFrame) -> dict[tuple[str, str, str], tuple[int, ...]]:
    columns = ["n", "k", "k_verbalized", "k_unverbalized", "excluded_low_fidelity"]
    return {
        (r.scenario_id, r.theme_id, r.condition): tuple(int(getattr(r, c)) for c in columns)
        for r in rates.itertuples()
    }


@pytest.mark.parametrize(
    ("unit", "include_low_fidelity", "expected"),
    [
        ("token", False, TOKENS),
        ("token", True, TOKENS_WITH_LOW),
        ("transcript", False, TRANSCRIPTS),
        ("transcript", True, TRANSCRIPTS_WITH_LOW),
    ],
)
def test_counts_rates_and_wilson_bounds(unit: str, include_low_fidelity: bool, expected: dict) -> None:
    rates = flag_rates(FRAME, include_low_fidelity=include_low_fidelity, unit=unit)
    assert _counts(rates) == expected
    n = rates["n"].to_numpy()
    for kind in KINDS:
        k = rates[f"k{kind}"].to_numpy()
        np.testing.assert_array_equal(rates[f"rate{kind}"], k / n)
        low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
        np.testing.assert_allclose(rates[f"low{kind}"], low, rtol=0, atol=1e-12)
        np.testing.assert_allclose(rates[f"high{kind}"], high, rtol=0, atol=1e-12)


def test_weighted_counts_give_the_same_rates() -> None:
    """``verdict_counts`` hands ``flag_rates`` one weighted row per group instead of one per token."""
    weighted = FRAME.groupby(list(FRAME.columns), as_index=False).size().rename(columns={"size": "weight"})
    assert len(weighted) < len(FRAME)
    for unit in ("token", "transcript"):
        for low in (False, True):
            pd.testing.assert_frame_equal(
                flag_rates(weighted, include_low_fidelity=low, unit=unit),
                flag_rates(FRAME, include_low_fidelity=low, unit=unit),
                check_dtype=False,
            )


def test_conditions_pair_with_their_own_control() -> None:
    rates = flag_rates(FRAME)
    compared = condition_vs_control(rates)
    pairs = compared[["scenario_id", "theme_id", "condition", "control_condition", "n", "control_n"]]
    assert [tuple(r) for r in pairs.itertuples(index=False)] == [
        ("s1", "deception", DEPLOY, HIGH, 4, 5),
        ("s1", "deception", EVAL, HIGH, 4, 5),
        ("s1", "sycophancy", EVAL, HIGH, 4, 5),
        ("s2", "deception", "cue=evaluation", "(none)", 3, 3),
    ]
    by_cell = rates.set_index(["scenario_id", "theme_id", "condition"])
    for row in compared.itertuples():
        main = by_cell.loc[(row.scenario_id, row.theme_id, row.condition)]
        control = by_cell.loc[(row.scenario_id, row.theme_id, row.control_condition)]
        assert (row.rate, row.control_rate) == (main["rate"], control["rate"])
        for kind in KINDS:
            k, ck = int(main[f"k{kind}"]), int(control[f"k{kind}"])
            low, high = confint_proportions_2indep(
                k, row.n, ck, row.control_n, method="newcomb", compare="diff"
            )
            assert getattr(row, f"diff{kind}") == pytest.approx(k / row.n - ck / row.control_n, abs=1e-15)
            assert getattr(row, f"diff{kind}_low") == pytest.approx(low, abs=1e-12)
            assert getattr(row, f"diff{kind}_high") == pytest.approx(high, abs=1e-12)
    eval_high = compared.iloc[1]
    assert (eval_high["diff"], eval_high["diff_verbalized"], eval_high["diff_unverbalized"]) == pytest.approx(
        (2 / 4 - 1 / 5, 1 / 4 - 1 / 5, 1 / 4 - 0 / 5)
    )
