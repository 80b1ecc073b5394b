"""What an auditor reads, page by page, through Streamlit's AppTest on real stores: evidence highlighted as
highlighting (never markup), multi-line samples kept whole, code kept as code, no live links in model
text, empty results explained, counts explained, scores named with their thresholds, controls told apart,
charts with offsets and axis titles, links that colour by the flag's theme and select its token."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import parse_qsl

import numpy as np

from audits.read_model.explanations import nla_setting
from audits.read_model.flags import raised_flags
from audits.store import open_store
from tests.audit_store import CODE, UNITS
from tests.workbench.dashboard.test_pages import page


def literal_markup(text: str) -> bool:
    """Whether markdown would show ``**`` as characters: a bold span with whitespace just inside it, an
    unpaired ``**``, or a ``[**`` that no directive opens."""
    if re.search(r"(?<!-background)\[\*\*", text):
        return True
    parts = text.split("**")
    inner = parts[1::2]
    return len(parts) % 2 == 0 or any(p != p.strip() or not p for p in inner)


def _array(data) -> np.ndarray:
    """A plotly array as sent to the browser (plain, or base64 with a dtype and shape)."""
    if isinstance(data, dict):
        values = np.frombuffer(base64.b64decode(data["bdata"]), data["dtype"])
        return values.reshape([int(n) for n in str(data["shape"]).split(",")]) if "shape" in data else values
    return np.array(data)


def _markdown(at) -> list[str]:
    return [m.value for m in at.markdown]


def test_demo_transcript_names_its_score_and_marks_low_fidelity(demo_db: str) -> None:
    at = page("transcript", campaign="demo")
    colour = at.selectbox(key="colour")
    # no flag raised: the strip leads with what the samples scored, never an all-zero flag score
    assert colour.value == "detector:evaluation_awareness"
    assert colour.options[0] == "Detector score · Evaluation awareness"
    caption = at.caption[0].value.replace("\\", "").replace("\u2060", "")
    assert caption.startswith("**Detector score · Evaluation awareness**: the highest score")
    setting = nla_setting(open_store(demo_db), "demo")
    thresholds = setting.thresholds["evaluation_awareness"]
    assert all(f"{d} {t:.2f}" in caption for d, t in thresholds.items())  # which score, and its thresholds
    strip = json.loads(at.get("plotly_chart")[0].proto.spec)
    scored = strip["data"][1]  # the coloured cells; the first trace holds the unscored ones
    assert scored["marker"]["cmax"] == max(thresholds.values()) and len(scored["x"]) > 0
    labels = [t for trace in strip["data"] for t in trace["text"]]
    assert "\ufffd" not in "".join(labels) and any(ch in "".join(labels) for ch in UNITS)  # spans, not bytes
    # each sample: fidelity badge when FVE is below 0, every detector's score beside its threshold
    badges = [m for m in _markdown(at) if m.startswith(":red-badge[")]
    fves = [float(c.value.split("AR FVE ")[1].split(" ")[0]) for c in at.caption if c.value.startswith("sample ")]
    assert fves and len(badges) == sum(f < 0 for f in fves) > 0
    lines = [c.value.replace("\\", "").replace("\u2060", "") for c in at.caption if "threshold" in c.value]
    assert any(re.search(r"semantic@\S+ \d\.\d\d / threshold \d\.\d\d", line) for line in lines), lines


def test_demo_transcript_keeps_code_and_unicode_and_makes_no_links(demo_db: str) -> None:
    at = page("transcript", campaign="demo")
    codes = [c.value for c in at.code]
    assert CODE in codes  # fenced code shown as code, indentation kept, no fences left in the text
    texts = _markdown(at)
    assert not any("```" in t or "\\`\\`\\`" in t for t in texts)
    assert any(UNITS in t for t in texts)
    system = next(t for t in texts if "example" in t)
    assert "@\u2060example" in system and ":\u2060//" in system  # no e-mail or URL turns into a live link
    picker = at.sidebar.selectbox(key="transcript").options
    controls = [o for o in picker if "(control)" in o]
    assert len(controls) == 2 and len({o.split(" · ")[1] for o in controls}) == 2  # two controls, told apart


def test_empty_results_are_explained_not_congratulated(demo_db: str) -> None:
    triage = page("triage", campaign="demo")
    info = triage.info[0].value.replace("\\", "")
    assert "The campaign raised no flags" in info and "widen" not in info
    assert re.search(r"\d+ token-theme verdicts on \d+ tokens", info)
    assert "up to" in info and "not evidence of absence" in info  # what it can and cannot rule out
    review = page("review", campaign="demo")
    assert not review.success  # no green "queue is clear"
    assert review.info[0].value == triage.info[0].value


def test_campaign_counts_are_explained_with_a_next_step(demo_db: str) -> None:
    at = page("campaigns", campaign="demo")
    assert "A demo-like audit: no flags." in _markdown(at)[0].replace("\\", "")  # its description
    metrics = {m.label: m.value for m in at.metric}
    note = next(c.value for c in at.caption if "token activations were read" in c.value).replace("\\", "")
    assert f"{metrics['activations']} token activations" in note
    assert f"{metrics['distinct vectors']} distinct vectors" in note
    assert f"so {metrics['explanations']} explanations are expected" in note  # vectors x samples
    primary = [b for b in at.button if b.proto.type == "primary" and not b.proto.is_form_submitter]
    assert [b.label for b in primary] == ["Next: no flags raised, read the transcripts"]
    rerun = at.button(key="start_run")
    assert rerun.label.startswith("Re-run") and rerun.proto.type == "tertiary"  # not the prominent one


def test_review_keeps_multi_line_samples_whole_and_highlights_the_evidence(dash_db: str) -> None:
    at = page("review")
    texts = _markdown(at)
    samples = [t for t in texts if "being tested" in t]
    assert samples and all("&lt;script&gt;" in t for t in samples)  # both lines in one block
    assert all(":orange-background[**being tested**]" in t for t in samples)  # the evidence, highlighted
    assert not [t for t in texts if literal_markup(t)]
    excerpt = next(t for t in texts if t.startswith("…"))
    assert ":orange-background[**" in excerpt and "** " not in excerpt  # the flagged token, no stray markup
    flag_id = int(at.subheader[0].value.rsplit(" ", 1)[-1])
    flags = raised_flags(open_store(dash_db), "xss").set_index("flag_id")
    link = dict(parse_qsl(at.get("page_link")[0].proto.query_string))  # "Open in Transcript"
    assert link == {"campaign": "xss", "transcript": str(flags.loc[flag_id, "transcript_id"]),
                    "pos": str(flags.loc[flag_id, "position"]), "colour": f"flag:{flags.loc[flag_id, 'theme_id']}"}  # fmt: skip


def test_transcript_opened_from_a_flag_colours_by_its_theme_and_selects_its_token(dash_db: str) -> None:
    flag = raised_flags(open_store(dash_db), "xss").iloc[0]
    at = page("transcript", transcript=str(flag["transcript_id"]), pos=str(flag["position"]),
              colour=f"flag:{flag['theme_id']}")  # fmt: skip
    assert at.selectbox(key="colour").value == f"flag:{flag['theme_id']}"
    assert at.selectbox(key="pos").value == flag["position"]
    strip = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    outlined = [int(p) for trace in strip for p, w in zip(_array(trace["customdata"]).ravel(),
                                                           _array(trace["marker"]["line"]["width"]), strict=True) if w == 3]  # fmt: skip
    assert outlined == [flag["position"]]  # the selected token is marked on the strip


def test_compare_offsets_themes_and_names_its_axes_and_columns(demo_db: str) -> None:
    at = page("compare", campaign="demo", low_fidelity="true")
    difference, arms = (json.loads(chart.proto.spec) for chart in at.get("plotly_chart"))
    assert difference["layout"]["scattermode"] == "group"  # the themes of a row side by side
    groups = [t["offsetgroup"] for t in difference["data"]]
    assert len(groups) == len(set(groups)) == 2
    for figure in (difference, arms):
        assert figure["layout"]["xaxis"]["title"]["text"] and figure["layout"]["yaxis"]["title"]["text"]
        assert figure["layout"]["yaxis"]["automargin"] is True  # long labels are never cut off
    cells = arms["data"][0]["y"]
    assert len(cells) == len(set(cells))  # one slot per condition
    controls = {c for c in at.dataframe[0].value["control"]}
    assert controls == {"goal=explicit (control)", "goal=latent (control)"}  # two controls of one scenario
    config = json.loads(at.dataframe[0].proto.columns) if at.dataframe[0].proto.columns else {}
    labels = {c.get("label") for c in config.values()} if config else set()
    assert "control tokens" in labels and "control_n" not in labels
