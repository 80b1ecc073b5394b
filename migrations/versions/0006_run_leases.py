"""Run leases: at most one live runner per campaign (``run_leases``, one row per campaign while a runner
holds it, with the holder's host, pid, run and last heartbeat). A second runner of the same campaign is
refused; a lease whose holder died is taken over and its run marked interrupted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``run_leases``."""
    op.create_table(
        "run_leases",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_run_leases__campaign_id__campaigns")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_leases__run_id__runs")),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_run_leases")),
    )  # fmt: skip


def downgrade() -> None:
    """Drop ``run_leases`` (a lease held at that moment is forgotten)."""
    op.drop_table("run_leases")
