"""The dashboard's pages, in navigation order: one place to add a page (the entry script builds the
navigation from it, and the page tests visit every page it lists)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    """One page of the dashboard."""

    section: str
    """The sidebar group it is listed under."""
    script: str
    """Its script, relative to the dashboard package (``views/<name>.py``)."""
    title: str
    """Its title: the sidebar label and the page's heading."""
    icon: str
    url_path: str
    """Its URL path; the default page (listed first) lives at ``/``."""

    @property
    def name(self) -> str:
        """The script's stem (``campaigns``, ``triage``...)."""
        return self.script.rsplit("/", 1)[-1].removesuffix(".py")


PAGES = [
    PageSpec("Audit", "views/campaigns.py", "Campaigns", ":material/folder_open:", "campaigns"),
    PageSpec("Audit", "views/discover.py", "Discover", ":material/travel_explore:", "discover"),
    PageSpec("Audit", "views/triage.py", "Triage", ":material/flag:", "triage"),
    PageSpec("Audit", "views/transcript.py", "Transcript", ":material/forum:", "transcript"),
    PageSpec("Audit", "views/review.py", "Review", ":material/rule:", "review"),
    PageSpec("Audit", "views/compare.py", "Compare", ":material/compare_arrows:", "compare"),
    PageSpec("Tools", "views/explore.py", "Explore", ":material/science:", "explore"),
    PageSpec("Tools", "views/export.py", "Export", ":material/download:", "export"),
]
"""Every page, in the order the sidebar lists them; the first is the default page."""
