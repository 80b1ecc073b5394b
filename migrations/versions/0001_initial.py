"""Initial schema: campaigns, runs, variants, transcripts, tokens, activations, explanations, reviews.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 10:00:38.719405
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create every table of the audit store."""
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("spec_json", sa.JSON(), nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("name", name=op.f("uq_campaigns__name")),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("provenance_json", sa.JSON(), nullable=False),
        sa.Column("executor", sa.String(), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'interrupted', 'failed', 'budget_exhausted')",
            name=op.f("ck_runs__status"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_runs__campaign_id__campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs__campaign_id"), "runs", ["campaign_id"])

    op.create_table(
        "variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("variant_key", sa.String(), nullable=False),
        sa.Column("scenario_id", sa.String(), nullable=False),
        sa.Column("scenario_version", sa.Integer(), nullable=False),
        sa.Column("is_control", sa.Boolean(), nullable=False),
        sa.Column("conditions_json", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_variants__campaign_id__campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variants")),
        sa.UniqueConstraint("campaign_id", "variant_key", name=op.f("uq_variants__campaign_id_variant_key")),
    )
    op.create_table(
        "explanations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("checkpoint_id", sa.String(), nullable=False),
        sa.Column("activation_key", sa.String(length=64), nullable=False),
        sa.Column("sampling_key", sa.String(length=64), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("raw_output", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("finish", sa.String(), nullable=False),
        sa.Column("n_tokens", sa.Integer(), nullable=False),
        sa.Column("cos", sa.Double(), nullable=True),
        sa.Column("mse", sa.Double(), nullable=True),
        sa.Column("fve", sa.Double(), nullable=True),
        sa.Column("generation_seconds", sa.Double(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_explanations__run_id__runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_explanations")),
        sa.UniqueConstraint(
            "checkpoint_id",
            "activation_key",
            "sampling_key",
            "sample_index",
            name="uq_explanations__content_address",
        ),
    )
    op.create_index(op.f("ix_explanations__activation_key"), "explanations", ["activation_key"])
    op.create_index(op.f("ix_explanations__run_id"), "explanations", ["run_id"])

    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('given', 'generated')", name=op.f("ck_transcripts__source")),
        sa.ForeignKeyConstraint(
            ["variant_id"], ["variants.id"], name=op.f("fk_transcripts__variant_id__variants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcripts")),
        sa.UniqueConstraint("variant_id", name=op.f("uq_transcripts__variant_id")),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.Integer(), nullable=False),
        sa.Column("message_index", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["transcript_id"], ["transcripts.id"], name=op.f("fk_messages__transcript_id__transcripts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint(
            "transcript_id", "message_index", name=op.f("uq_messages__transcript_id_message_index")
        ),
    )
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

    op.create_table(
        "token_positions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("token_text", sa.Text(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("message_index", sa.Integer(), nullable=False),
        sa.Column("in_content", sa.Boolean(), nullable=False),
        sa.Column("is_special", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["transcript_id"], ["transcripts.id"], name=op.f("fk_token_positions__transcript_id__transcripts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_positions")),
        sa.UniqueConstraint(
            "transcript_id", "position", name=op.f("uq_token_positions__transcript_id_position")
        ),
    )
    op.create_table(
        "activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_position_id", sa.Integer(), nullable=False),
        sa.Column("model_ref", sa.String(), nullable=False),
        sa.Column("layer", sa.Integer(), nullable=False),
        sa.Column("activation_key", sa.String(length=64), nullable=False),
        sa.Column("d_model", sa.Integer(), nullable=False),
        sa.Column("norm", sa.Double(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_position_id"],
            ["token_positions.id"],
            name=op.f("fk_activations__token_position_id__token_positions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activations")),
        sa.UniqueConstraint(
            "token_position_id",
            "model_ref",
            "layer",
            name=op.f("uq_activations__token_position_id_model_ref_layer"),
        ),
    )
    op.create_index(op.f("ix_activations__activation_key"), "activations", ["activation_key"])


def downgrade() -> None:
    """Drop every table of the audit store."""
    op.drop_index(op.f("ix_activations__activation_key"), table_name="activations")
    op.drop_table("activations")
    op.drop_table("token_positions")
    op.drop_index(op.f("ix_reviews__explanation_id"), table_name="reviews")
    op.drop_table("reviews")
    op.drop_table("messages")
    op.drop_table("transcripts")
    op.drop_index(op.f("ix_explanations__run_id"), table_name="explanations")
    op.drop_index(op.f("ix_explanations__activation_key"), table_name="explanations")
    op.drop_table("explanations")
    op.drop_table("variants")
    op.drop_index(op.f("ix_runs__campaign_id"), table_name="runs")
    op.drop_table("runs")
    op.drop_table("campaigns")
