"""Dashboard pages on a store with several campaigns and NLA checkpoints (``compare_db``): budget used on
Campaigns, two campaigns and the two checkpoints of one campaign side by side on Compare, and the
triage table's paging bound to the URL (a link opens its page; the browser writes the URL back)."""

from __future__ import annotations

from audits.campaign_status import campaign_status
from audits.read_model.campaigns import comparison_arms
from audits.read_model.flags import raised_flags
from audits.store import open_store
from audits.themes.rates import flag_frame
from tests.workbench.dashboard.test_pages import page


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_campaigns_show_the_budget_used(compare_db: str) -> None:
    store = open_store(compare_db)
    capped = campaign_status(store, "xss-calm", {})
    assert capped.runs[-1][1] == "budget_exhausted" and capped.distinct_activations == 9
    at = page("campaigns", campaign="xss-calm")
    assert _metrics(at)["budget used: vectors"] == "6 of 6"  # stopped at its cap of 6 of 9 vectors
    assert _metrics(at)["budget used: wall time (last run)"] == f"{capped.last_run_seconds:.0f} s of 600 s"
    at.sidebar.selectbox(key="campaign").set_value("xss").run()
    free = campaign_status(store, "xss", {})
    assert _metrics(at)["budget used: vectors"] == "9 (no cap)"
    assert _metrics(at)["budget used: wall time (last run)"] == f"{free.last_run_seconds:.0f} s (no limit)"


def _arm(store, campaign: str, newest: int = 0) -> str:
    return comparison_arms(store).query("campaign == @campaign")["arm"].iloc[newest]


def _side_by_side(at) -> dict[str, list[float]]:
    """The side-by-side table: each arm's evaluation-awareness and deception rate."""
    table = at.dataframe[-1].value.set_index("theme_id")
    return {arm: [table.loc["evaluation_awareness", arm], table.loc["deception", arm]]
            for arm in table.columns if arm != "scenario_id"}  # fmt: skip


def test_compare_puts_two_campaigns_side_by_side(compare_db: str) -> None:
    store = open_store(compare_db)
    taught, calm = _arm(store, "xss"), _arm(store, "xss-calm")
    at = page("compare", campaign="xss", low_fidelity="true", against=calm)  # not the default campaign
    assert not at.error and not at.warning, [e.value for e in [*at.error, *at.warning]]
    assert (at.selectbox(key="arm").value, at.selectbox(key="against").value) == (taught, calm)
    captions = " ".join(c.value for c in at.caption)
    assert f"checkpoint {taught.split(':', 1)[1]}" in captions.replace("\\", "")
    assert f"checkpoint {calm.split(':', 1)[1]}" in captions.replace("\\", "")
    rates = _side_by_side(at)  # the taught NLA hears a test everywhere, the calm one nowhere
    assert rates == {f"xss · {taught.split(':', 1)[1]} (untrained)": [1.0, 0.0],
                     f"xss-calm · {calm.split(':', 1)[1]} (untrained)": [0.0, 0.0]}  # fmt: skip
    bars = at.get("plotly_chart")[-1]
    assert '"name":"xss-calm' in bars.proto.spec.replace(" ", "")


def test_compare_puts_the_two_checkpoints_of_one_campaign_side_by_side(compare_db: str) -> None:
    store = open_store(compare_db)
    second, first = _arm(store, "drift", 0), _arm(store, "drift", 1)  # newest run first
    assert second.split(":", 1)[1] != first.split(":", 1)[1]
    at = page("compare", campaign="drift", low_fidelity="true")
    assert "2 NLA checkpoints" in at.warning[0].value  # the campaign's own rates pool them: said so
    assert at.selectbox(key="arm").options == [
        f"drift · {a.split(':', 1)[1]} (untrained)" for a in (second, first)
    ]
    assert (at.selectbox(key="arm").value, at.selectbox(key="against").value) == (second, first)
    assert list(_side_by_side(at).values()) == [[1.0, 0.0], [0.0, 0.0]]  # taught, then calm
    checkpoints = flag_frame(store, "drift").groupby("checkpoint_id").size()
    assert len(checkpoints) == 2  # both checkpoints have verdicts of their own


def test_triage_paging_is_bound_to_the_url(compare_db: str) -> None:
    flags = raised_flags(open_store(compare_db), "drift")
    assert len(flags) > 25
    first = page("triage", campaign="drift", per_page="25")
    assert first.number_input(key="page").label == f"Page (of {-(-len(flags) // 25)})"
    second = page("triage", campaign="drift", per_page="25", page="2")
    assert second.selectbox(key="per_page").value == 25 and second.number_input(key="page").value == 2
    one, two = first.dataframe[0].value["flag"], second.dataframe[0].value["flag"]
    assert len(one) == 25 and len(two) == len(flags) - 25
    assert set(one) | set(two) == set(flags["flag_id"]) and not set(one) & set(two)
    second.number_input(key="page").set_value(1).run()
    assert list(second.dataframe[0].value["flag"]) == list(one)
