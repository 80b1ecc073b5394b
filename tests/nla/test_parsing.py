"""Every AV output gets a status; nothing is dropped."""

import pytest

from nla.parsing import Status, parse_explanation


@pytest.mark.parametrize(
    ("raw", "status", "text"),
    [
        ("<explanation>\nCooking talk.\n</explanation>", Status.OK, "Cooking talk."),
        ("preamble <explanation>a</explanation> <explanation>b</explanation>", Status.OK, "a"),
        ("<explanation>cut off mid", Status.UNCLOSED, "cut off mid"),
        ("no tags at all", Status.NO_TAGS, ""),
        ("<explanation>  </explanation>", Status.EMPTY, ""),
        ("<explanation>the ● symbol</explanation>", Status.INJECTION_FAILED, ""),
    ],
)
def test_statuses(raw: str, status: Status, text: str) -> None:
    parsed = parse_explanation(raw, "●")
    assert (parsed.status, parsed.text) == (status, text)
