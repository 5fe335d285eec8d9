"""Fixtures shared by every test package: a migrated SQLite template per run, and each test's own data dir on a copy."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if (
    str(ROOT) not in sys.path
):  # the packages live at the repository root; pytest may not have put it on sys.path
    sys.path.insert(0, str(ROOT))

from storage.db import init_db, make_engine, session_factory  # noqa: E402


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """A database migrated to head once per run; tests copy it (migrating per test would cost ~0.1 s each)."""
    path = tmp_path_factory.mktemp("template") / "finetuner.db"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    engine.dispose()
    return path


@pytest.fixture
def offline(monkeypatch):
    """No test reaches the network: a hub id fails at once with the engine's offline message."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def data_dir(tmp_path, template_db, monkeypatch) -> Path:
    """A fresh DATA_DIR (database already migrated) set in the environment, as the app and worker see it."""
    d = tmp_path / "data"
    d.mkdir()
    shutil.copy(template_db, d / "finetuner.db")
    monkeypatch.setenv("DATA_DIR", str(d))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return d


@pytest.fixture
def sessions(data_dir):
    """A session factory on the test's database (its own engine, disposed afterwards)."""
    engine = make_engine(f"sqlite:///{data_dir / 'finetuner.db'}")
    yield session_factory(engine)
    engine.dispose()
