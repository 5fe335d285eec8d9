"""Fixtures shared by every test package: one migrated SQLite template per run, copied by each test's own DB."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if (
    str(ROOT) not in sys.path
):  # the packages live at the repository root; pytest may not have put it on sys.path
    sys.path.insert(0, str(ROOT))

from storage.db import init_db, make_engine  # noqa: E402


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """A database migrated to head once per run; tests copy it (migrating per test would cost ~0.1 s each)."""
    path = tmp_path_factory.mktemp("template") / "finetuner.db"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    engine.dispose()
    return path
