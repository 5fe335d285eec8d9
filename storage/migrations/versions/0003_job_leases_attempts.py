"""Job leases and attempts (fenced worker writes); job ids never reused (AUTOINCREMENT).

SQLite can only add AUTOINCREMENT by rebuilding the table. `storage.db.init_db` turns foreign keys off around
migrations, because with them on, dropping the old ``jobs`` table would cascade-delete every loss point,
eval point and score that refers to it.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "jobs",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.add_column(sa.Column("worker_id", sa.String(300)))
        batch.add_column(sa.Column("lease_until", sa.DateTime))
        # 0: not claimed since this release; every claim adds one
        batch.add_column(sa.Column("attempt", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for col in ("attempt", "lease_until", "worker_id"):
            batch.drop_column(col)
