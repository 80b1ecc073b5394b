"""Reviews of discovered terms: append-only human decisions on a term that discovery found (a lead without
a theme), keyed by the comparison it was found in (campaign, source, arm against arm).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``term_reviews``."""
    op.create_table(
        "term_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("arm", sa.String(), nullable=False),
        sa.Column("against", sa.String(), nullable=False),
        sa.Column("term", sa.String(), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("trim(reason) <> ''", name=op.f("ck_term_reviews__reason_given")),
        sa.CheckConstraint("trim(author) <> ''", name=op.f("ck_term_reviews__author_given")),
        sa.CheckConstraint("trim(term) <> ''", name=op.f("ck_term_reviews__term_given")),
        sa.CheckConstraint("decision IN ('confirm', 'dismiss', 'follow_up')", name=op.f("ck_term_reviews__decision")),
        sa.CheckConstraint("source IN ('explanations', 'replies', 'logit-lens')", name=op.f("ck_term_reviews__source")),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_term_reviews__campaign_id__campaigns")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_term_reviews")),
    )  # fmt: skip
    op.create_index(op.f("ix_term_reviews__campaign_id"), "term_reviews", ["campaign_id"], unique=False)


def downgrade() -> None:
    """Drop ``term_reviews`` (the decisions on discovered terms are lost)."""
    op.drop_index(op.f("ix_term_reviews__campaign_id"), table_name="term_reviews")
    op.drop_table("term_reviews")
