"""Constants and helpers shared by the fault-injection tests and their fixtures (a module, so both import it)."""

from __future__ import annotations

import time
from pathlib import Path

FAULTY_WORKER = Path(__file__).with_name("faulty_worker.py")
LEASE_S = 3.0  # seconds, not the production minute: a lapse takes this long to happen in a test


def wait_for(predicate, timeout_s: float = 120.0, every_s: float = 0.1):
    """Poll until `predicate()` is truthy and return it; the timeout only bounds a hang, it asserts no speed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError("condition not met in time")
