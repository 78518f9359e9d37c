"""Initial schema: blobs, manifests, layers, models, gguf_info.

Revision ID: 0001
Revises:
Create Date: 2026-05-09 00:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # Timestamps are naive UTC on disk; registry.tables.UtcDateTime adds the zone back.
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(71), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "manifests",
        sa.Column("digest", sa.String(71), primary_key=True),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("config_digest", sa.String(71), sa.ForeignKey("blobs.digest"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_manifests_config_digest", "manifests", ["config_digest"])
    op.create_table(
        "layers",
        sa.Column("manifest_digest", sa.String(71),
                  sa.ForeignKey("manifests.digest", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("blob_digest", sa.String(71), sa.ForeignKey("blobs.digest"), nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_layers_blob_digest", "layers", ["blob_digest"])
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("host", sa.String(350), nullable=False),
        sa.Column("namespace", sa.String(80), nullable=False),
        sa.Column("model", sa.String(80), nullable=False),
        sa.Column("tag", sa.String(80), nullable=False),
        sa.Column("name_key", sa.String(600), nullable=False, unique=True),
        sa.Column("manifest_digest", sa.String(71), sa.ForeignKey("manifests.digest"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("modified_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_models_manifest_digest", "models", ["manifest_digest"])
    op.create_index("ix_models_modified_at", "models", ["modified_at"])
    op.create_table(
        "gguf_info",
        sa.Column("blob_digest", sa.String(71),
                  sa.ForeignKey("blobs.digest", ondelete="CASCADE"), primary_key=True),
        sa.Column("architecture", sa.String(255), nullable=False),
        sa.Column("parameter_count", sa.BigInteger(), nullable=False),
        sa.Column("parameter_size", sa.String(32), nullable=False),
        sa.Column("quantization", sa.String(32), nullable=False),
        sa.Column("context_length", sa.BigInteger(), nullable=False),
        sa.Column("embedding_length", sa.BigInteger(), nullable=False),
        sa.Column("chat_template", sa.Text(), nullable=False),
        sa.Column("bos_token", sa.Text(), nullable=False),
        sa.Column("eos_token", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("gguf_info")
    op.drop_index("ix_models_modified_at", "models")
    op.drop_index("ix_models_manifest_digest", "models")
    op.drop_table("models")
    op.drop_index("ix_layers_blob_digest", "layers")
    op.drop_table("layers")
    op.drop_index("ix_manifests_config_digest", "manifests")
    op.drop_table("manifests")
    op.drop_table("blobs")
