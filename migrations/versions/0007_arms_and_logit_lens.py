"""Target arms and the logit lens: a transcript may be ``read`` (an arm's model teacher-forced on another
arm's transcript, the same-text control), and ``logit_lens`` stores the top tokens of each selected
activation read through the target's final norm and unembedding.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Allow ``transcripts.source = 'read'``; create ``logit_lens``."""
    with op.batch_alter_table("transcripts") as batch_op:
        batch_op.drop_constraint(op.f("ck_transcripts__source"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_transcripts__source"), "source IN ('given', 'generated', 'read')"
        )
    op.create_table(
        "logit_lens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activation_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.Integer(), nullable=False),
        sa.Column("token_ids", sa.JSON(), nullable=False),
        sa.Column("tokens", sa.JSON(), nullable=False),
        sa.Column("logprobs", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["activation_id"], ["activations.id"], name=op.f("fk_logit_lens__activation_id__activations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logit_lens")),
        sa.UniqueConstraint("activation_id", "layer", name=op.f("uq_logit_lens__activation_id_layer")),
    )  # fmt: skip


def downgrade() -> None:
    """Drop ``logit_lens``; read transcripts become ``given`` (their text was given to the reading model)."""
    op.drop_table("logit_lens")
    op.execute("UPDATE transcripts SET source = 'given' WHERE source = 'read'")
    with op.batch_alter_table("transcripts") as batch_op:
        batch_op.drop_constraint(op.f("ck_transcripts__source"), type_="check")
        batch_op.create_check_constraint(op.f("ck_transcripts__source"), "source IN ('given', 'generated')")
