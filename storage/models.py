"""SQLAlchemy 2.0 typed ORM: every table the project keeps.

Timestamps are naive UTC (`utcnow()`): SQLite has no time-zone type, and one convention everywhere keeps
SQL comparisons such as "heartbeat older than N seconds" correct.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

TASKS = ("sequence", "pair", "token")  # the input shape
# what the label is: one name, a list of names, or a number (storage.label_values stores each as text)
PROBLEMS = ("single", "multilabel", "regression")
SPLITS = ("train", "eval", "test")
JOB_KINDS = (
    "train",
    "score",
    "predict",
    "evaluate",
)  # a plain String(10) column: a new kind needs no migration
JOB_STATUSES = ("queued", "running", "cancelling", "cancelled", "completed", "failed", "interrupted")
ACTIVE_STATUSES = ("queued", "running", "cancelling")
FINAL_STATUSES = ("cancelled", "completed", "failed")


def utcnow() -> datetime:
    """Naive UTC now (see module docstring)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iob2_tags(entity_types: list[str]) -> list[str]:
    """The IOB2 tag set that follows from entity types, in label-set order.

    Args:
        entity_types: ordered entity types, e.g. ``["PER", "ORG"]``.

    Returns:
        ``"O"`` then ``B-``/``I-`` for each type.

    >>> iob2_tags(["PER", "ORG"])
    ['O', 'B-PER', 'I-PER', 'B-ORG', 'I-ORG']
    """
    tags = ["O"]
    for name in entity_types:
        tags += [f"B-{name}", f"I-{name}"]
    return tags


class Base(DeclarativeBase):
    """Declarative base; `type_annotation_map` keeps dict/list columns as JSON."""

    # none_as_null: Python None is SQL NULL, so "IS NULL" finds unlabeled token examples
    type_annotation_map = {dict[str, Any]: JSON(none_as_null=True), list[str]: JSON(none_as_null=True)}


class Dataset(Base):
    """A named collection of examples for one input shape (`task`) and one kind of label (`problem`)."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(20))
    problem: Mapped[str] = mapped_column(String(20), default="single", server_default="single")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    labels: Mapped[list[Label]] = relationship(
        back_populates="dataset",
        order_by="Label.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def label_names(self) -> list[str]:
        """Label names in label-set order (entity types for token datasets)."""
        return [label.name for label in self.labels]


class Label(Base):
    """One entry of a dataset's ordered label set; for token datasets an entity type such as PER."""

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)

    dataset: Mapped[Dataset] = relationship(back_populates="labels")


class Example(Base):
    """One example: text (+ text_pair) or tokens; a label or tags, or none yet."""

    __tablename__ = "examples"
    __table_args__ = (
        Index("ix_examples_dataset_label", "dataset_id", "label"),
        Index("ix_examples_dataset_split", "dataset_id", "split"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    text: Mapped[str | None] = mapped_column(Text)
    text_pair: Mapped[str | None] = mapped_column(Text)
    tokens: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    # a multi-label value is a JSON list of names: Text on PostgreSQL (0004); SQLite does not enforce lengths
    label: Mapped[str | None] = mapped_column(String(200).with_variant(Text, "postgresql"))
    tags: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    split: Mapped[str | None] = mapped_column(String(10))
    source_file: Mapped[str | None] = mapped_column(String(500))
    source_row: Mapped[int | None] = mapped_column(Integer)
    labeled_by: Mapped[str | None] = mapped_column(String(200))
    labeled_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Multi-user labeling: an example handed to one labeler is hidden from others until the lease ends.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Job(Base):
    """A training or scoring run: configuration, queue state, live progress and results."""

    __tablename__ = "jobs"
    # AUTOINCREMENT: an id is never handed out twice, so a late write of a deleted job's worker cannot land
    # on a newer job that would otherwise reuse its id
    __table_args__ = (
        Index("ix_jobs_queue", "status", "priority", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="train", server_default="train")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # higher runs first
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    # Leases (storage/jobs.py): who holds the job ("host:pid"), until when, and which claim this is. Every write
    # of a worker names its attempt; once the job is recovered or claimed again, the old attempt's writes are
    # refused, so a worker that was only slow can never overwrite the job's newer state.
    worker_id: Mapped[str | None] = mapped_column(String(300))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    step: Mapped[int | None] = mapped_column(Integer)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    examples_per_s: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    checkpoint_dir: Mapped[str | None] = mapped_column(String(1000))
    model_dir: Mapped[str | None] = mapped_column(String(1000))
    # Set when an interrupted job is requeued: the checkpoint to continue from (None: start over).
    resume_from: Mapped[str | None] = mapped_column(String(1000))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))

    dataset: Mapped[Dataset | None] = relationship()


class LossPoint(Base):
    """One point of a loss curve; enough to redraw every curve after a restart."""

    __tablename__ = "loss_points"
    __table_args__ = (Index("ix_loss_points_job_step", "job_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float] = mapped_column(Float, default=0.0)
    split: Mapped[str] = mapped_column(String(10), default="train")
    loss: Mapped[float] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EvalPoint(Base):
    """Evaluation metrics of one job at one epoch/step."""

    __tablename__ = "eval_points"
    __table_args__ = (Index("ix_eval_points_job_step", "job_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    epoch: Mapped[float] = mapped_column(Float)
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ExampleScore(Base):
    """A model's prediction for one example (model-in-the-loop labeling and active learning)."""

    __tablename__ = "example_scores"
    __table_args__ = (Index("ix_example_scores_job_example", "job_id", "example_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    example_id: Mapped[int] = mapped_column(ForeignKey("examples.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    # a suggested label set is stored as an example's would be: a JSON list (Text on PostgreSQL, as examples.label)
    label: Mapped[str | None] = mapped_column(String(200).with_variant(Text, "postgresql"))
    tags: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    confidence: Mapped[float | None] = mapped_column(Float)
    entropy: Mapped[float | None] = mapped_column(Float)
    margin: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
