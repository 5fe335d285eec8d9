"""Queue order and live progress on jobs, labeling leases, eval points, example scores.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("examples") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(200)))
        batch.add_column(sa.Column("lease_until", sa.DateTime))
    with op.batch_alter_table("jobs") as batch:
        # server defaults fill the rows that already exist
        batch.add_column(sa.Column("kind", sa.String(10), nullable=False, server_default="train"))
        batch.add_column(sa.Column("priority", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("worker_pid", sa.Integer))
        batch.add_column(sa.Column("step", sa.Integer))
        batch.add_column(sa.Column("total_steps", sa.Integer))
        batch.add_column(sa.Column("examples_per_s", sa.Float))
        batch.add_column(sa.Column("eta_s", sa.Float))
        batch.add_column(sa.Column("message", sa.Text))
        batch.add_column(sa.Column("resume_from", sa.String(1000)))
    op.create_index("ix_jobs_queue", "jobs", ["status", "priority", "created_at"])
    op.create_table(
        "eval_points",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("epoch", sa.Float, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_eval_points_job_step", "eval_points", ["job_id", "step"])
    op.create_table(
        "example_scores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("example_id", sa.Integer, sa.ForeignKey("examples.id", ondelete="CASCADE"), nullable=False),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("label", sa.String(200)),
        sa.Column("tags", sa.JSON),
        sa.Column("confidence", sa.Float),
        sa.Column("entropy", sa.Float),
        sa.Column("margin", sa.Float),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_example_scores_example_id", "example_scores", ["example_id"])
    op.create_index("ix_example_scores_job_example", "example_scores", ["job_id", "example_id"])


def downgrade() -> None:
    op.drop_table("example_scores")
    op.drop_table("eval_points")
    op.drop_index("ix_jobs_queue", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for col in (
            "resume_from",
            "message",
            "eta_s",
            "examples_per_s",
            "total_steps",
            "step",
            "worker_pid",
            "priority",
            "kind",
        ):
            batch.drop_column(col)
    with op.batch_alter_table("examples") as batch:
        batch.drop_column("lease_owner")
        batch.drop_column("lease_until")
