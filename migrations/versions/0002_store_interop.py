"""Store interop: manifest files on disk and blob verification state.

``models.file_digest``: the manifest digest last written to (or read from) the model's Ollama
manifest file, so a rescan can tell a file someone removed (delete the row) from a row that
never had one (write the file). ``blobs.verified_at`` / ``mtime_ns`` / ``corrupt_digest``: when
the blob last hashed correctly, the file's mtime then, and what it hashed to when it did not.
Rows written before this revision were hashed as they were stored: they count as verified.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 00:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("models", sa.Column("file_digest", sa.String(71), nullable=True))
    op.add_column("blobs", sa.Column("verified_at", sa.DateTime(), nullable=True))
    op.add_column("blobs", sa.Column("mtime_ns", sa.BigInteger(), nullable=True))
    op.add_column("blobs", sa.Column("corrupt_digest", sa.String(71), nullable=True))
    op.execute("UPDATE blobs SET verified_at = created_at")


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("corrupt_digest")
        batch.drop_column("mtime_ns")
        batch.drop_column("verified_at")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("file_digest")
