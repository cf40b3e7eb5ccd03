"""A mailing's own rate: ``max_rate``, at most that many of its messages a second.

NULL means no limit of its own (the global HERALD_PROBE_RATE_LIMIT still applies). The
senders share it through a ``rate_limits`` row named ``mailing:<id>``, like the global one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("mailings", sa.Column("max_rate", sa.Float()))
    op.create_check_constraint(
        op.f("ck_mailings_max_rate"),
        "mailings",
        "max_rate IS NULL OR max_rate BETWEEN 0.01 AND 100000",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_mailings_max_rate"), "mailings", type_="check")
    op.drop_column("mailings", "max_rate")
