"""What can be known about a Hugging Face hub id without downloading it: is it cached, is the hub reachable.

Torch-free (only huggingface_hub), so the web app can ask at Start without paying for the engine's imports.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

HUB_HOST = ("huggingface.co", 443)


def offline_forced() -> bool:
    """HF_HUB_OFFLINE set to a true value (read now, not at import, so a test or the operator can set it late)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def in_hub_cache(repo_id: str, cache_dir: str | Path | None = None) -> bool:
    """Whether the hub id's config.json is in the local HF cache (what an offline load needs first)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir), str)
    except Exception:  # noqa: BLE001 - a malformed id or an unreadable cache both mean "not cached"
        return False


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """A TCP connect to the hub in a thread, so even a hanging DNS lookup cannot block longer than timeout_s."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(HUB_HOST, timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)
    return bool(result and result[0])
