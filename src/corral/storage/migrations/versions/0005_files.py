"""The Files API: files, multi-part uploads, and which container files were copied from which file.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("tenant", sa.String(120), nullable=False),
        sa.Column("filename", sa.String(1024), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Integer, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
    )
    op.create_index("ix_files_tenant_created", "files", ["tenant", "created_at"])
    op.create_index("ix_files_expires", "files", ["expires_at"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("tenant", sa.String(120), nullable=False),
        sa.Column("filename", sa.String(1024), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("mime_type", sa.String(255), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("file_id", sa.String(80), nullable=True),
        sa.Column("file_expires_after_s", sa.Integer, nullable=True),
    )
    op.create_index("ix_uploads_expires", "uploads", ["status", "expires_at"])
    op.create_table(
        "upload_parts",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column(
            "upload_id", sa.String(80), sa.ForeignKey("uploads.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "container_file_sources",
        sa.Column("container_file_id", sa.String(80), primary_key=True),
        sa.Column("container_id", sa.String(80), nullable=False),
        sa.Column("file_id", sa.String(80), nullable=False),
    )
    op.create_index("ix_container_file_sources_container", "container_file_sources", ["container_id", "file_id"])


def downgrade() -> None:
    op.drop_table("container_file_sources")
    op.drop_table("upload_parts")
    op.drop_table("uploads")
    op.drop_table("files")
