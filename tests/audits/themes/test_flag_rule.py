"""The flag rule on hand-built tokens: agreement, fidelity, neighbours and citations."""

from __future__ import annotations

from audits.themes.definitions import load_themes
from audits.themes.flag_rule import SampleEvidence, TokenEvidence, judge_tokens, rule_key

THRESHOLDS = {"lexicon@v1": 0.5, "semantic@v1": 0.6}


def _theme(**rule: object):
    theme = load_themes()["deception"]
    return theme.model_copy(update={"flag": theme.flag.model_copy(update=rule)})


def _sample(eid: int, semantic: float, lexicon: float = 0.0, fve: float | None = 0.4) -> SampleEvidence:
    return SampleEvidence(eid, {"semantic@v1": semantic, "lexicon@v1": lexicon}, f"evidence {eid}", fve, 0.9)


def test_agreement_and_citation() -> None:
    tokens = [
        TokenEvidence(1, 10, (_sample(11, 0.9), _sample(12, 0.7))),  # both hit: cite the strongest
        TokenEvidence(2, 20, (_sample(21, 0.2), _sample(22, 0.1, lexicon=0.5))),  # one of two hits
        TokenEvidence(3, 30, (_sample(31, 0.1), _sample(32, 0.3))),  # none hits
        TokenEvidence(4, 40, ()),  # no parsed sample: no verdict at all
    ]
    verdicts = {v.token_position_id: v for v in judge_tokens(tokens, _theme(min_agreement=0.5), THRESHOLDS)}
    assert set(verdicts) == {1, 2, 3}
    first = verdicts[1]
    assert first.raised and first.agreement == 1.0 and first.n_hits == 2 and first.n_samples == 2
    assert first.explanation_id == 11 and first.evidence_text == "evidence 11"
    assert first.score == (0.9 + 0.7) / 2
    assert verdicts[2].raised and verdicts[2].explanation_id == 22 and verdicts[2].agreement == 0.5
    assert not verdicts[3].raised and verdicts[3].evidence_text is None and verdicts[3].score == 0.0
    assert verdicts[3].explanation_id == 32  # the strongest sample is still cited for display
    strict = {v.token_position_id: v for v in judge_tokens(tokens, _theme(min_agreement=1.0), THRESHOLDS)}
    assert strict[1].raised and not strict[2].raised


def test_low_fidelity_is_marked_not_hidden() -> None:
    tokens = [
        TokenEvidence(1, 5, (_sample(1, 0.9, fve=-0.3),)),
        TokenEvidence(2, 50, (_sample(2, 0.9, fve=None),)),
    ]
    verdicts = judge_tokens(tokens, _theme(min_fve=0.0), THRESHOLDS)
    assert [v.raised for v in verdicts] == [True, True]
    assert [v.low_fidelity for v in verdicts] == [True, False]  # unknown fidelity is not called low
    assert verdicts[0].fve == -0.3


def test_neighbours_count_and_gate() -> None:
    tokens = [
        TokenEvidence(i, p, (_sample(i, s),)) for i, (p, s) in enumerate([(1, 0.9), (2, 0.9), (9, 0.9)])
    ]
    loose = judge_tokens(tokens, _theme(neighbour_window=2), THRESHOLDS)
    assert [v.neighbours for v in loose] == [1, 1, 0]
    gated = judge_tokens(tokens, _theme(neighbour_window=2, min_neighbours=1), THRESHOLDS)
    assert [v.raised for v in gated] == [True, True, False]


def test_rule_key_changes_with_rule_and_thresholds() -> None:
    base = rule_key(_theme(), THRESHOLDS)
    assert base == rule_key(_theme(), dict(THRESHOLDS))
    assert base != rule_key(_theme(min_agreement=1.0), THRESHOLDS)
    assert base != rule_key(_theme(), {**THRESHOLDS, "semantic@v1": 0.61})
