"""Export: the campaign's audit report (HTML, Markdown or PDF) and analysis-ready data (flags,
explanations, reviews, term reviews or tokens as CSV, JSONL or Parquet), built on request and downloaded."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from audits.errors import SpecError
from audits.reports.exports import COLUMNS, stream_rows, write_export
from audits.reports.gather import gather
from audits.reports.render import render_html, render_markdown, render_pdf
from workbench.dashboard.state import library, pick_campaign, store
from workbench.dashboard.text import md_escape

MIME = {"html": "text/html", "md": "text/markdown", "pdf": "application/pdf", "csv": "text/csv",
        "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}  # fmt: skip

st.title("Export")
s = store()
campaign = pick_campaign(s)


def report_section() -> None:
    st.subheader("Audit report", anchor=False)
    st.caption(
        "Scope, findings with intervals, confirmed evidence, limitations; all text escaped, works offline."
    )
    fmt = st.segmented_control(
        "Format", ["html", "md", "pdf"], default="html", key="report_format", required=True
    )
    include_unreviewed = st.toggle("List unreviewed flags too", False, key="include_unreviewed")
    include_low = st.toggle("Count low-fidelity verdicts in the rates", False, key="include_low_fidelity")
    if st.button("Build report", key="build_report", icon=":material/description:"):
        with st.spinner("Building the report…"):
            try:
                data = gather(s, campaign, library(), include_unreviewed=include_unreviewed,
                              include_low_fidelity=include_low)  # fmt: skip
                st.session_state["report"] = (f"{campaign}-report.{fmt}", _render(data, fmt), fmt)
            except (SpecError, ValueError, OSError) as error:
                st.error(md_escape(str(error)))
    if st.session_state.get("report", ("",))[0].startswith(f"{campaign}-report."):
        name, payload, fmt = st.session_state["report"]
        st.download_button(f"Download {name}", payload, file_name=name, mime=MIME[fmt], key="download_report",
                           icon=":material/download:")  # fmt: skip


def _render(data, fmt: str) -> bytes:
    if fmt == "md":
        return render_markdown(data).encode()
    html = render_html(data)
    if fmt == "html":
        return html.encode()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.pdf"
        render_pdf(html, out)
        return out.read_bytes()


def data_section() -> None:
    st.subheader("Data", anchor=False)
    left, right = st.columns(2)
    what = left.selectbox("Table", list(COLUMNS), key="export_what")
    fmt = right.selectbox("Format", ["csv", "jsonl", "parquet"], key="export_format")
    with st.expander("Columns"):
        st.dataframe(
            [{"column": n, "type": str(t), "meaning": m} for n, t, m in COLUMNS[what]], hide_index=True
        )
    if st.button("Prepare export", key="build_export", icon=":material/table:"):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"export.{fmt}"
            count = write_export(stream_rows(s, campaign, what), what, fmt, out)
            st.session_state["export"] = (f"{campaign}-{what}.{fmt}", out.read_bytes(), fmt, count)
    if st.session_state.get("export", ("",))[0].startswith(f"{campaign}-"):
        name, payload, fmt, count = st.session_state["export"]
        st.download_button(f"Download {name} ({count} rows)", payload, file_name=name, mime=MIME[fmt],
                           key="download_export", icon=":material/download:")  # fmt: skip


report_section()
data_section()
