"""Index flags by (campaign, raised): a campaign's raised flags (a few percent of its verdicts) are then
read without scanning every verdict, as the Campaigns, Triage and Review pages do on each cold render.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 13:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``ix_flags__campaign_id_raised``."""
    op.create_index(op.f("ix_flags__campaign_id_raised"), "flags", ["campaign_id", "raised"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index(op.f("ix_flags__campaign_id_raised"), table_name="flags")
