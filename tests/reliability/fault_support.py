"""Constants and helpers shared by the fault-injection tests and their fixtures (a module, so both import it)."""

from __future__ import annotations

from pathlib import Path

FAULTY_WORKER = Path(__file__).with_name("faulty_worker.py")
LEASE_S = 3.0  # seconds, not the production minute: a lapse takes this long to happen in a test
