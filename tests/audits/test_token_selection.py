"""Token selection: roles, stride, even spreading under a cap, explicit positions."""

from audits.campaign_spec import TokenSelection
from audits.token_selection import select_tokens
from nla.activations import TokenInfo


def _tokens() -> list[TokenInfo]:
    roles = ["system"] * 3 + ["user"] * 5 + ["assistant"] * 10
    return [TokenInfo(i, i, f"t{i}", r, 0, i % 9 != 0, i == 9) for i, r in enumerate(roles)]


def test_roles_skip_scaffold_and_specials() -> None:
    chosen = select_tokens(_tokens(), TokenSelection(roles=["assistant"], max_per_transcript=None))
    assert chosen == [8, 10, 11, 12, 13, 14, 15, 16, 17]  # 9 is special


def test_stride_and_even_cap() -> None:
    tokens = _tokens()
    assert select_tokens(
        tokens, TokenSelection(roles=["user", "assistant"], stride=3, max_per_transcript=None)
    ) == [3, 6, 10, 13, 16]
    capped = select_tokens(tokens, TokenSelection(roles=["assistant"], max_per_transcript=3))
    assert capped == [8, 13, 17]
    assert select_tokens(tokens, TokenSelection(roles=["assistant"], max_per_transcript=1)) == [17]


def test_explicit_positions_override_roles_and_cap() -> None:
    chosen = select_tokens(
        _tokens(), TokenSelection(roles=["user"], max_per_transcript=1, positions=[17, 0, 9, 9, 40])
    )
    assert chosen == [0, 9, 17]  # any role, specials kept, duplicates merged, past the end skipped
