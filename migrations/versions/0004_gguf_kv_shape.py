"""GGUF facts: the K/V cache shape the gateway's memory estimate needs.

``gguf_info.kv_*``: block count, attention head counts and key/value lengths of the weights
blob (``registry.gguf_info.KvShape``). Rows written before this revision keep NULLs: the
registry reads the header again the first time it resolves such a blob and stores the shape
then. The migration itself reads no blob: it runs before the store is known, on any database
(a PostgreSQL one shared by registries on other hosts included), and must stay quick.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 00:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_COLUMNS = ("kv_block_count", "kv_head_count", "kv_head_count_kv", "kv_key_length",
            "kv_value_length")


def upgrade() -> None:
    """Upgrade schema."""
    for name in _COLUMNS:
        op.add_column("gguf_info", sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("gguf_info") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
