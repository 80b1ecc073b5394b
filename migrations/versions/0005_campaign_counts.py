"""Cheap campaign counts: ``activations.campaign_id`` (a campaign's distinct vectors are one index range),
an index that answers "which samples of these vectors exist, with what status" on its own, and
``flag_tallies`` (verdicts counted per transcript, rule, checkpoint and outcome), backfilled here and
kept by the runner in the transaction that writes the verdicts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TALLY_KEY = ["campaign_id", "transcript_id", "theme_id", "theme_version", "rule_key", "checkpoint_id", "raised",
             "low_fidelity", "in_reply", "in_prompt"]  # fmt: skip
CAMPAIGN_OF_TOKEN = """(SELECT variants.campaign_id FROM token_positions
    JOIN transcripts ON transcripts.id = token_positions.transcript_id
    JOIN variants ON variants.id = transcripts.variant_id
    WHERE token_positions.id = activations.token_position_id)"""


def upgrade() -> None:
    """Add and backfill ``activations.campaign_id`` and ``flag_tallies``; add the covering indexes."""
    op.add_column("activations", sa.Column("campaign_id", sa.Integer(), nullable=True))
    op.execute(f"UPDATE activations SET campaign_id = {CAMPAIGN_OF_TOKEN}")
    with op.batch_alter_table("activations") as batch_op:
        batch_op.alter_column("campaign_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            op.f("fk_activations__campaign_id__campaigns"), "campaigns", ["campaign_id"], ["id"]
        )
        batch_op.create_index(
            op.f("ix_activations__campaign_id_layer_activation_key"),
            ["campaign_id", "layer", "activation_key"],
        )
    op.create_index(
        "ix_explanations__status_by_address", "explanations",
        ["checkpoint_id", "sampling_key", "activation_key", "sample_index", "status"],
    )  # fmt: skip
    op.create_table(
        "flag_tallies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.Integer(), nullable=False),
        sa.Column("theme_id", sa.String(), nullable=False),
        sa.Column("theme_version", sa.Integer(), nullable=False),
        sa.Column("rule_key", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_id", sa.String(), nullable=False),
        sa.Column("raised", sa.Boolean(), nullable=False),
        sa.Column("low_fidelity", sa.Boolean(), nullable=False),
        sa.Column("in_reply", sa.Boolean(), nullable=False),
        sa.Column("in_prompt", sa.Boolean(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_flag_tallies__campaign_id__campaigns")),
        sa.ForeignKeyConstraint(
            ["transcript_id"], ["transcripts.id"], name=op.f("fk_flag_tallies__transcript_id__transcripts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_tallies")),
        sa.UniqueConstraint(*TALLY_KEY, name="uq_flag_tallies__cell"),
    )  # fmt: skip
    columns = ", ".join(TALLY_KEY)
    grouped = ", ".join(
        f"flags.{c}" if c != "transcript_id" else "token_positions.transcript_id" for c in TALLY_KEY
    )
    op.execute(
        f"INSERT INTO flag_tallies ({columns}, count) SELECT {grouped}, count(*) FROM flags "
        f"JOIN token_positions ON token_positions.id = flags.token_position_id GROUP BY {grouped}"
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("flag_tallies")
    op.drop_index("ix_explanations__status_by_address", table_name="explanations")
    with op.batch_alter_table("activations") as batch_op:
        batch_op.drop_index(op.f("ix_activations__campaign_id_layer_activation_key"))
        batch_op.drop_constraint(op.f("fk_activations__campaign_id__campaigns"), type_="foreignkey")
        batch_op.drop_column("campaign_id")
