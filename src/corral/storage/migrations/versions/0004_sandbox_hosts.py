"""Sandbox hosts, the secret they share with gateways, and chunked blobs (container files kept for
any host).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "blob_chunks",
        sa.Column("key", sa.String(1200), primary_key=True),
        sa.Column("sequence", sa.Integer, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "sandbox_hosts",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("url", sa.String(512), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("containers", sa.Integer, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
    )
    op.create_table(
        "cluster_secrets",
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cluster_secrets")
    op.drop_table("sandbox_hosts")
    op.drop_table("blob_chunks")
