"""The tables. The migrations in `migrations/versions` create and change them; keep both in step."""

import sqlalchemy as sa

metadata = sa.MetaData()

responses = sa.Table(
    "responses",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("tenant", sa.String(120), nullable=False),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("previous_response_id", sa.String(80), nullable=True, index=True),
    sa.Column("conversation_id", sa.String(80), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
)

INPUT, OUTPUT = 0, 1

response_events = sa.Table(
    "response_events",
    metadata,
    sa.Column("response_id", sa.String(80), primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True),
    sa.Column("event", sa.JSON, nullable=False),
)

response_items = sa.Table(
    "response_items",
    metadata,
    sa.Column("response_id", sa.String(80), sa.ForeignKey("responses.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("part", sa.SmallInteger, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.String(120), nullable=True),
    sa.Column("item", sa.JSON, nullable=False),
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("tenant", sa.String(120), nullable=False),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
)

conversation_items = sa.Table(
    "conversation_items",
    metadata,
    sa.Column("conversation_id", sa.String(80), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.String(120), nullable=False),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("item", sa.JSON, nullable=False),
    sa.Index("ix_conversation_items_item", "conversation_id", "item_id"),
)

containers = sa.Table(
    "containers",
    metadata,
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
    sa.Index("ix_containers_tenant_created", "tenant", "created_at"),
    sa.Index("ix_containers_status", "status", "last_active_at"),
)

container_files = sa.Table(
    "container_files",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("container_id", sa.String(80), sa.ForeignKey("containers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("tenant", sa.String(120), nullable=False),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Index("ix_container_files_path", "container_id", "path"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("tenant", sa.String(120), nullable=False),
    sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("hint", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Integer, nullable=False),
)

blob_chunks = sa.Table(
    "blob_chunks",
    metadata,
    sa.Column("key", sa.String(1200), primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

sandbox_hosts = sa.Table(
    "sandbox_hosts",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("url", sa.String(512), nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("containers", sa.Integer, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)

cluster_secrets = sa.Table(
    "cluster_secrets",
    metadata,
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("tenant", sa.String(120), nullable=False),
    sa.Column("filename", sa.String(1024), nullable=False),
    sa.Column("purpose", sa.String(40), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Integer, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Index("ix_files_tenant_created", "tenant", "created_at"),
    sa.Index("ix_files_expires", "expires_at"),
)

uploads = sa.Table(
    "uploads",
    metadata,
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
    sa.Index("ix_uploads_expires", "status", "expires_at"),
)

upload_parts = sa.Table(
    "upload_parts",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("upload_id", sa.String(80), sa.ForeignKey("uploads.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
)

container_file_sources = sa.Table(
    "container_file_sources",
    metadata,
    sa.Column("container_file_id", sa.String(80), primary_key=True),
    sa.Column("container_id", sa.String(80), nullable=False),
    sa.Column("file_id", sa.String(80), nullable=False),
    sa.Index("ix_container_file_sources_container", "container_id", "file_id"),
)

background_leases = sa.Table(
    "background_leases",
    metadata,
    sa.Column("response_id", sa.String(80), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

skills = sa.Table(
    "skills",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("tenant", sa.String(120), nullable=False),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("description", sa.String(1024), nullable=False),
    sa.Column("default_version", sa.Integer, nullable=False),
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("last_issued_version", sa.Integer, nullable=False),
    sa.Index("ix_skills_tenant_created", "tenant", "created_at"),
)

skill_versions = sa.Table(
    "skill_versions",
    metadata,
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
