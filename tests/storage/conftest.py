"""Fixtures for the storage tests: a session on the test's own migrated database (`db_url`), and data factories."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from storage_factories import make_dataset as _make_dataset

from storage.db import make_engine, session_factory
from storage.models import Base


@pytest.fixture
def Session(db_url):
    """A session factory on this test's database (its own engine, disposed afterwards)."""
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def session(Session):
    """An open session on this test's database."""
    with Session() as s:
        yield s


@pytest.fixture
def make_dataset():
    """Factory: ``make_dataset(session, kind, n=8, labeled=True, name=None) -> Dataset``."""
    return _make_dataset


@pytest.fixture
def write_file(tmp_path):
    """Factory: ``write_file(name, content)`` writes str (UTF-8) or bytes under tmp_path and returns the path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
        return path

    return write


def snapshot(session) -> dict[str, int]:
    """Row count of every table: compare before/after to show the database did not change."""
    session.rollback()
    return {t.name: session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


@pytest.fixture
def db_snapshot():
    """Factory: ``db_snapshot(session) -> {table: row count}``."""
    return snapshot
