"""Initial schema: datasets, labels, examples, jobs, loss points (first release).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.UniqueConstraint("dataset_id", "name"),
    )
    op.create_index("ix_labels_dataset_id", "labels", ["dataset_id"])
    op.create_table(
        "examples",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.Text),
        sa.Column("text_pair", sa.Text),
        sa.Column("tokens", sa.JSON),
        sa.Column("label", sa.String(200)),
        sa.Column("tags", sa.JSON),
        sa.Column("split", sa.String(10)),
        sa.Column("source_file", sa.String(500)),
        sa.Column("source_row", sa.Integer),
        sa.Column("labeled_by", sa.String(200)),
        sa.Column("labeled_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_examples_dataset_label", "examples", ["dataset_id", "label"])
    op.create_index("ix_examples_dataset_split", "examples", ["dataset_id", "split"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE")),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("heartbeat_at", sa.DateTime),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("checkpoint_dir", sa.String(1000)),
        sa.Column("model_dir", sa.String(1000)),
        sa.Column("metrics", sa.JSON),
    )
    op.create_index("ix_jobs_dataset_id", "jobs", ["dataset_id"])
    op.create_table(
        "loss_points",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("epoch", sa.Float, nullable=False),
        sa.Column("split", sa.String(10), nullable=False),
        sa.Column("loss", sa.Float, nullable=False),
        sa.Column("lr", sa.Float),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_loss_points_job_step", "loss_points", ["job_id", "step"])


def downgrade() -> None:
    for table in ("loss_points", "jobs", "examples", "labels", "datasets"):
        op.drop_table(table)
