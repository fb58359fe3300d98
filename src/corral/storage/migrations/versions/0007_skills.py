"""The Skills API: skills and their immutable, numbered versions (the bundles live in a blob store).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "skills",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("tenant", sa.String(120), nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(1024), nullable=False),
        sa.Column("default_version", sa.Integer, nullable=False),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("last_issued_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_skills_tenant_created", "skills", ["tenant", "created_at"])
    op.create_table(
        "skill_versions",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("skill_id", sa.String(80), sa.ForeignKey("skills.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(1024), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("files", sa.Integer, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("skill_id", "version", name="uq_skill_versions_number"),
    )


def downgrade() -> None:
    op.drop_table("skill_versions")
    op.drop_table("skills")
