"""Initial schema: responses, conversations, containers.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("tenant", sa.String(120), nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("previous_response_id", sa.String(80), nullable=True, index=True),
        sa.Column("conversation_id", sa.String(80), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
    )
    op.create_table(
        "response_items",
        sa.Column("response_id", sa.String(80), sa.ForeignKey("responses.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("part", sa.SmallInteger, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.String(120), nullable=True),
        sa.Column("item", sa.JSON, nullable=False),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("tenant", sa.String(120), nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_table(
        "conversation_items",
        sa.Column("conversation_id", sa.String(80), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.String(120), nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("item", sa.JSON, nullable=False),
    )
    op.create_index("ix_conversation_items_item", "conversation_items", ["conversation_id", "item_id"])
    op.create_table(
        "containers",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("tenant", sa.String(120), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("last_active_at", sa.Integer, nullable=False),
        sa.Column("expires_after_minutes", sa.Integer, nullable=False),
        sa.Column("memory_limit", sa.String(8), nullable=False),
        sa.Column("backend", sa.String(40), nullable=False),
        sa.Column("location", sa.String(256), nullable=True),
        sa.Column("extra", sa.JSON, nullable=False),
    )
    op.create_index("ix_containers_tenant_created", "containers", ["tenant", "created_at"])
    op.create_index("ix_containers_status", "containers", ["status", "last_active_at"])
    op.create_table(
        "container_files",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("container_id", sa.String(80), sa.ForeignKey("containers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tenant", sa.String(120), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
    )
    op.create_index("ix_container_files_path", "container_files", ["container_id", "path"])


def downgrade() -> None:
    for table in (
        "container_files",
        "containers",
        "conversation_items",
        "conversations",
        "response_items",
        "responses",
    ):
        op.drop_table(table)
