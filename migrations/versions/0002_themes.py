"""Themes: definitions, detector scores, triage scores and flags; reviews move from explanations to
flags; activations record why they were selected.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:42:37.054114
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the theme tables, re-create reviews on flags (no release ever wrote reviews), add
    ``activations.selection``."""
    op.create_table(
        "theme_definitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("theme_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("definition_json", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_theme_definitions")),
        sa.UniqueConstraint("theme_id", "version", name=op.f("uq_theme_definitions__theme_id_version")),
    )
    op.create_table(
        "theme_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("explanation_id", sa.Integer(), nullable=False),
        sa.Column("theme_id", sa.String(), nullable=False),
        sa.Column("theme_version", sa.Integer(), nullable=False),
        sa.Column("detector", sa.String(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("evidence_start", sa.Integer(), nullable=True),
        sa.Column("evidence_end", sa.Integer(), nullable=True),
        sa.Column("evidence_text", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["explanation_id"], ["explanations.id"], name=op.f("fk_theme_scores__explanation_id__explanations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_theme_scores")),
        sa.UniqueConstraint(
            "explanation_id", "theme_id", "theme_version", "detector",
            name=op.f("uq_theme_scores__explanation_id_theme_id_theme_version_detector"),
        ),
    )  # fmt: skip
    op.create_index(op.f("ix_theme_scores__explanation_id"), "theme_scores", ["explanation_id"])
    op.create_table(
        "triage_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_position_id", sa.Integer(), nullable=False),
        sa.Column("checkpoint_id", sa.String(), nullable=False),
        sa.Column("theme_id", sa.String(), nullable=False),
        sa.Column("theme_version", sa.Integer(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_position_id"], ["token_positions.id"],
            name=op.f("fk_triage_scores__token_position_id__token_positions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_scores")),
        sa.UniqueConstraint(
            "token_position_id", "checkpoint_id", "theme_id", "theme_version",
            name=op.f("uq_triage_scores__token_position_id_checkpoint_id_theme_id_theme_version"),
        ),
    )  # fmt: skip
    op.create_table(
        "flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("token_position_id", sa.Integer(), nullable=False),
        sa.Column("activation_key", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_id", sa.String(), nullable=False),
        sa.Column("sampling_key", sa.String(length=64), nullable=False),
        sa.Column("theme_id", sa.String(), nullable=False),
        sa.Column("theme_version", sa.Integer(), nullable=False),
        sa.Column("rule_key", sa.String(length=64), nullable=False),
        sa.Column("raised", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("agreement", sa.Double(), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("n_hits", sa.Integer(), nullable=False),
        sa.Column("neighbours", sa.Integer(), nullable=False),
        sa.Column("low_fidelity", sa.Boolean(), nullable=False),
        sa.Column("fve", sa.Double(), nullable=True),
        sa.Column("cos", sa.Double(), nullable=True),
        sa.Column("explanation_id", sa.Integer(), nullable=True),
        sa.Column("evidence_text", sa.Text(), nullable=True),
        sa.Column("in_reply", sa.Boolean(), nullable=False),
        sa.Column("in_prompt", sa.Boolean(), nullable=False),
        sa.Column("visible_message_index", sa.Integer(), nullable=True),
        sa.Column("visible_evidence", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_flags__campaign_id__campaigns")),
        sa.ForeignKeyConstraint(
            ["explanation_id"], ["explanations.id"], name=op.f("fk_flags__explanation_id__explanations")
        ),
        sa.ForeignKeyConstraint(
            ["token_position_id"], ["token_positions.id"], name=op.f("fk_flags__token_position_id__token_positions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flags")),
        sa.UniqueConstraint(
            "campaign_id", "token_position_id", "theme_id", "theme_version", "checkpoint_id", "sampling_key",
            "rule_key", name="uq_flags__verdict",
        ),
    )  # fmt: skip
    op.create_index(op.f("ix_flags__campaign_id"), "flags", ["campaign_id"])
    op.create_index(op.f("ix_flags__token_position_id"), "flags", ["token_position_id"])

    op.drop_index(op.f("ix_reviews__explanation_id"), table_name="reviews")
    op.drop_table("reviews")
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flag_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("trim(reason) <> ''", name=op.f("ck_reviews__reason_given")),
        sa.CheckConstraint("trim(author) <> ''", name=op.f("ck_reviews__author_given")),
        sa.CheckConstraint(
            "decision IN ('confirm', 'dismiss', 'follow_up')", name=op.f("ck_reviews__decision")
        ),
        sa.ForeignKeyConstraint(["flag_id"], ["flags.id"], name=op.f("fk_reviews__flag_id__flags")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews__flag_id"), "reviews", ["flag_id"])

    with op.batch_alter_table("activations") as batch_op:
        batch_op.add_column(sa.Column("selection", sa.String(), server_default="cap", nullable=False))
        batch_op.create_check_constraint(
            op.f("ck_activations__selection"), "selection IN ('cap', 'triage_top', 'triage_random')"
        )


def downgrade() -> None:
    """Drop the theme tables and ``activations.selection``; reviews go back to explanations (reviews
    of flags cannot be carried back and are dropped)."""
    with op.batch_alter_table("activations") as batch_op:
        batch_op.drop_constraint(op.f("ck_activations__selection"), type_="check")
        batch_op.drop_column("selection")
    op.drop_index(op.f("ix_reviews__flag_id"), table_name="reviews")
    op.drop_table("reviews")
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("explanation_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("trim(reason) <> ''", name=op.f("ck_reviews__reason_given")),
        sa.ForeignKeyConstraint(
            ["explanation_id"], ["explanations.id"], name=op.f("fk_reviews__explanation_id__explanations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews__explanation_id"), "reviews", ["explanation_id"])
    op.drop_index(op.f("ix_flags__token_position_id"), table_name="flags")
    op.drop_index(op.f("ix_flags__campaign_id"), table_name="flags")
    op.drop_table("flags")
    op.drop_table("triage_scores")
    op.drop_index(op.f("ix_theme_scores__explanation_id"), table_name="theme_scores")
    op.drop_table("theme_scores")
    op.drop_table("theme_definitions")
