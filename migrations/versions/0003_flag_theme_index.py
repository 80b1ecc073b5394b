"""Index flags by (campaign, theme): the newest verdict per theme is then an index lookup, which
every dashboard page and report makes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 15:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``ix_flags__campaign_id_theme_id``."""
    op.create_index(op.f("ix_flags__campaign_id_theme_id"), "flags", ["campaign_id", "theme_id"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index(op.f("ix_flags__campaign_id_theme_id"), table_name="flags")
