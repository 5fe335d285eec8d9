"""Dataset problem (single / multilabel / regression); examples.label and example_scores.label (the model's
suggestion, stored in the same form) widened to Text on PostgreSQL.

A multi-label value is stored as a JSON list of names, which can pass 200 characters. SQLite does not enforce
VARCHAR lengths, so only PostgreSQL's column changes type (the model says so with a dialect variant).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
WIDENED = ("examples", "example_scores")  # the tables whose label column holds a JSON list of names


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        # the server default fills the datasets that already exist: every one so far is single-label
        batch.add_column(sa.Column("problem", sa.String(20), nullable=False, server_default="single"))
    if _postgresql():
        for table in WIDENED:
            op.alter_column(table, "label", type_=sa.Text, existing_type=sa.String(200))


def downgrade() -> None:
    if _postgresql():
        # a multi-label value longer than 200 characters would not fit: cut rather than fail the downgrade
        for table in WIDENED:
            op.alter_column(
                table,
                "label",
                type_=sa.String(200),
                existing_type=sa.Text,
                postgresql_using="left(label, 200)",
            )
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("problem")
