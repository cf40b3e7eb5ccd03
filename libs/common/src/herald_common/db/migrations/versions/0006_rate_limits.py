"""One row per shared rate limit: the external API's requests/s across every sender.

The senders run GCRA on the row (``tat``, the theoretical arrival time of the next
request) by the database's clock, each leasing a few consecutive slots per statement.
``rate`` is the rate in force: the configured limit, lowered while the API answers 429
and raised back to the limit after.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("tat", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("throttled_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("rate > 0", name=op.f("ck_rate_limits_rate")),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
