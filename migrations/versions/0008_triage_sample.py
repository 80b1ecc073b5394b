"""Distilled triage: an activation may be selected as part of the seeded random sample a campaign verbalizes
first to train its screening probes (``activations.selection = 'triage_sample'``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Allow ``triage_sample``."""
    with op.batch_alter_table("activations") as batch_op:
        batch_op.drop_constraint(op.f("ck_activations__selection"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_activations__selection"), "selection IN ('cap', 'triage_top', 'triage_random', 'triage_sample')"
        )


def downgrade() -> None:
    """Sampled activations count as random picks again (they were drawn at random)."""
    op.execute("UPDATE activations SET selection = 'triage_random' WHERE selection = 'triage_sample'")
    with op.batch_alter_table("activations") as batch_op:
        batch_op.drop_constraint(op.f("ck_activations__selection"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_activations__selection"), "selection IN ('cap', 'triage_top', 'triage_random')"
        )
