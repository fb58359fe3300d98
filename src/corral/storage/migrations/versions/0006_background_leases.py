"""Background responses get an owner with a lease, so that a replica that dies is noticed.

Responses left `queued` or `in_progress` by a gateway that died before this revision get an
expired lease with no owner, so the first replica to sweep marks them failed.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    leases = op.create_table(
        "background_leases",
        sa.Column("response_id", sa.String(80), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    responses = sa.table("responses", sa.column("id", sa.String), sa.column("status", sa.String))
    stranded = op.get_bind().execute(sa.select(responses.c.id).where(responses.c.status.in_(("queued", "in_progress"))))
    rows = [{"response_id": row.id, "owner": "", "expires_at": 0.0} for row in stranded]
    if rows:
        op.bulk_insert(leases, rows)


def downgrade() -> None:
    op.drop_table("background_leases")
