"""The dashboard's entry script: one ``st.navigation`` app over the audit store, built from the page
registry (``workbench.dashboard.pages``).

Run it with ``nla-workbench dashboard [--db URL]`` (which sets ``NLA_WORKBENCH_DB``)."""

from __future__ import annotations

import streamlit as st
from PIL import Image, ImageDraw

from workbench.dashboard.pages import PAGES
from workbench.dashboard.state import PAGE, db_url
from workbench.dashboard.text import md_escape


@st.cache_resource(show_spinner=False)
def favicon() -> Image.Image:
    """The tab icon, a magnifier drawn here: a ``:material/...:`` icon would be fetched from Google's font
    servers, and the dashboard makes no request beyond its own server."""
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, 63, 63), radius=14, fill=(31, 64, 120, 255))
    draw.ellipse((12, 10, 42, 40), outline=(255, 255, 255, 255), width=6)
    draw.line((38, 37, 53, 52), fill=(255, 255, 255, 255), width=8)
    return image


st.set_page_config(page_title="NLA Audit Workbench", page_icon=favicon(), layout="wide")

sections: dict[str, list] = {}
for i, spec in enumerate(PAGES):
    sections.setdefault(spec.section, []).append(
        st.Page(spec.script, title=spec.title, icon=spec.icon, default=i == 0,
                **({} if i == 0 else {"url_path": spec.url_path}))
    )  # fmt: skip

page = st.navigation(sections)
st.session_state[PAGE] = page.url_path
st.sidebar.caption(f"Store: {md_escape(db_url())}")
page.run()
