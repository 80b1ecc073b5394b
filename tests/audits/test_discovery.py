"""Discovery: keyness equals a hand computation (prior included), terms of the control arm never rank for the
other arm, scaffolding never ranks, a term needs two transcripts; and discovery over a real tiny campaign."""

import math
from collections import Counter

import pandas as pd
import pytest
from typer.testing import CliRunner

from audits.discovery import discover, log_odds_z, rank_terms
from audits.discovery.terms import document_terms, mentions_term, scaffolding


def test_log_odds_equals_hand_computation():
    focal, other = Counter({"gold": 6, "cat": 2}), Counter({"cat": 5, "dog": 3})
    table = log_odds_z(focal, other).set_index("term")
    # prior: each term's pooled count; a_0 = 16; n_focal = 8, n_other = 8
    y_i, y_j, a, a0, n_i, n_j = 6, 0, 6, 16, 8, 8
    delta = math.log((y_i + a) / (n_i + a0 - y_i - a)) - math.log((y_j + a) / (n_j + a0 - y_j - a))
    variance = 1 / (y_i + a) + 1 / (y_j + a)
    assert table.loc["gold", "prior"] == a
    assert table.loc["gold", "delta"] == pytest.approx(delta)
    assert table.loc["gold", "variance"] == pytest.approx(variance)
    assert table.loc["gold", "z"] == pytest.approx(delta / math.sqrt(variance))
    y_i, y_j, a = 2, 5, 7
    expected = (math.log((y_i + a) / (n_i + a0 - y_i - a)) - math.log((y_j + a) / (n_j + a0 - y_j - a))) / math.sqrt(
        1 / (y_i + a) + 1 / (y_j + a)
    )
    assert table.loc["cat", "z"] == pytest.approx(expected)
    assert list(log_odds_z(focal, other)["term"]) == ["gold", "cat", "dog"]  # strongest first
    assert table.loc["dog", "z"] < 0 < table.loc["gold", "z"]
    halved = log_odds_z(focal, other, prior_scale=0.5).set_index("term")
    assert halved.loc["gold", "prior"] == 3 and halved.loc["gold", "z"] != table.loc["gold", "z"]


def _docs(rows: list[tuple[int, str]]) -> pd.DataFrame:
    return pd.DataFrame({"transcript_id": [t for t, _ in rows], "terms": [document_terms(text) for _, text in rows]})


def test_control_only_terms_scaffolding_and_single_transcripts_never_rank():
    scaffold = "Recent text: final token."
    focal = _docs([(1, f"{scaffold} golden coins"), (2, f"{scaffold} golden treasure"), (3, f"{scaffold} hidden ship"),
                   (3, f"{scaffold} hidden ship")])  # fmt: skip
    other = _docs([(10, f"{scaffold} silver spoon"), (11, f"{scaffold} silver cup"), (12, f"{scaffold} plain cup")])
    ranked, scaffold_terms = rank_terms(focal, other)
    assert {"recent", "final", "final token", "recent text", "token", "text"} <= scaffold_terms
    terms = set(ranked["term"])
    assert "golden" in terms  # two transcripts carry it
    assert "hidden" not in terms and "ship" not in terms  # one transcript only, however often
    assert not terms & {"silver", "spoon", "cup", "plain"}  # only in the control arm
    assert not terms & scaffold_terms
    assert (ranked["z"] > 0).all() and (ranked["transcripts"] >= 2).all()


def test_terms_and_phrases():
    assert document_terms("The Final token is 'gold'; it glitters.") == {
        "final", "token", "gold", "glitters", "final token",
    }  # fmt: skip
    assert mentions_term("A pirate's buried treasure.", "buried treasure")
    # v2's lens teacher spells whitespace tokens as escapes: they are not words ("xa xa" once ranked)
    lens_line = """Final token "'\\n'" breaks the line; next likely "'\\xa'", "'\\xa0'", "'\\u00a0'", "'\\t'"."""
    assert document_terms(lens_line) == {"final", "token", "breaks", "line", "likely", "final token", "token breaks"}
    assert document_terms(r"Saved to C:\notes\xavier") == {"saved", "notes", "xavier", "notes xavier"}
    assert not mentions_term("golden", "gold")
    assert scaffolding([{"a", "b"}, {"a"}, {"c"}]) == {"a"}


def test_discovery_over_a_campaign(tiny_dirs, tiny_init_dirs, tmp_path):
    """A real tiny campaign with arms (base, fine-tune, base reading the fine-tune): discovery picks the
    control arm, splits position groups, refuses unknown arms, and the CLI prints its table."""
    from audits.campaign_registry import register_campaign
    from audits.campaign_spec import campaign_from_dict
    from audits.runner import CampaignRunner
    from audits.store import open_store, upgrade
    from tests.audits.test_arms import arms_campaign
    from tests.nla.test_adapters import make_adapter
    from workbench.cli.app import app

    db = str(tmp_path / "store.db")
    upgrade(db)
    data = arms_campaign(tiny_dirs, tiny_init_dirs, make_adapter(tiny_dirs["llama"], tmp_path / "lora"))
    with open_store(db) as store:
        register_campaign(store, campaign_from_dict(data, {}))
        CampaignRunner(store, "arms", {}).run()
        found = discover(store, "arms", source="logit-lens", min_transcripts=1)
        assert (found.arm, found.against) == ("tuned", "base") and found.n_docs > 0 and found.n_docs_other > 0
        assert set(found.arms) == {"base", "tuned", "base-reads-tuned"}
        reads = discover(store, "arms", arm="base-reads-tuned", source="replies", min_transcripts=1)
        assert reads.against == "base" and reads.n_transcripts == 3
        before = discover(store, "arms", source="logit-lens", positions="before-reply", min_transcripts=1)
        assert 0 < before.n_docs < found.n_docs
        with pytest.raises(Exception, match="not an arm"):
            discover(store, "arms", arm="nobody")
    out = CliRunner().invoke(app, ["campaign", "discover", "arms", "--db", db, "--source", "logit-lens"])
    assert out.exit_code == 0, out.output
    assert "arm 'tuned'" in out.output and "against 'base'" in out.output
